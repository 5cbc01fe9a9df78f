/**
 * One lane of OnnxLanes (lanes.ts): a worker thread with its own onnxruntime sessions for one
 * classifier, answering logits / lossGradient / linfStep requests from the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeModel } from '../onnx/proto';
import type { LaneInit, LaneReply, LaneRequest } from './lanes';
import { OnnxClassifier } from './onnx-classifier';
import { createSession } from './session';

async function main(): Promise<void> {
  const init = workerData as LaneInit;
  const session = await createSession(init.model, init.sessionOptions);
  const classifier = new OnnxClassifier({
    model: decodeModel(init.model),
    shapes: new Map(init.shapes),
    session,
    input: init.input,
    output: init.output,
    sampleDims: init.sampleDims,
    numClasses: init.numClasses,
    fixedBatch: init.fixedBatch,
    sessionOptions: init.sessionOptions,
  });
  const port = parentPort!;
  port.on('message', async (request: LaneRequest) => {
    let reply: LaneReply;
    try {
      // Results are views of onnxruntime's output buffers: compact copies are transferred back.
      if (request.method === 'release') {
        await classifier.release();
        await session.release();
        reply = { id: request.id, arrays: [] };
      } else if (request.method === 'logits') {
        reply = { id: request.id, arrays: [(await classifier.logits(...request.args)).slice()] };
      } else if (request.method === 'lossGradient') {
        const { grad, logits } = await classifier.lossGradient(...request.args);
        reply = { id: request.id, arrays: [grad.slice(), logits.slice()] };
      } else {
        const { next, logits } = await classifier.linfStep!(...request.args);
        reply = { id: request.id, arrays: [next.slice(), logits.slice()] };
      }
    } catch (e) {
      reply = { id: request.id, arrays: [], error: { message: (e as Error).message, name: (e as Error).name } };
    }
    port.postMessage(
      reply,
      reply.arrays.map((a) => a.buffer as ArrayBuffer),
    );
  });
  port.postMessage({ ready: true, linfStep: classifier.linfStep !== undefined });
}

void main().catch((e) => parentPort!.postMessage({ ready: false, error: (e as Error).message }));
