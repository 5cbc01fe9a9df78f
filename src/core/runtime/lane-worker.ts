/**
 * One lane of OnnxLanes (lanes.ts): a worker thread with its own onnxruntime sessions for one
 * classifier, answering logits / lossGradient / linfStep requests from the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { decodeModel } from '../onnx/proto';
import type { LaneInit, LaneReply, LaneRequest } from './lanes';
import { OnnxClassifier } from './onnx-classifier';
import { createSession, type Session } from './session';
import * as ort from 'onnxruntime-node';

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
  const judgeSession: Session | undefined = init.judge ? await createSession(init.judge.model, init.sessionOptions) : undefined;
  const judged = async (x: Float32Array, n: number): Promise<Float32Array> => {
    const out = await judgeSession!.run({ [init.input]: new ort.Tensor('float32', x, [n, ...init.sampleDims]) }, [init.judge!.output]);
    return out[init.judge!.output].data as Float32Array;
  };
  const port = parentPort!;
  port.on('message', async (request: LaneRequest) => {
    let reply: LaneReply;
    try {
      // Results are views of onnxruntime's output buffers: compact copies are transferred back.
      if (request.method === 'release') {
        await classifier.release();
        await session.release();
        await judgeSession?.release();
        reply = { id: request.id, arrays: [] };
      } else if (request.method === 'logits') {
        const logits = judgeSession ? await judged(...request.args) : await classifier.logits(...request.args);
        reply = { id: request.id, arrays: [logits.slice()] };
      } else if (request.method === 'lossGradient') {
        const { grad, logits } = await classifier.lossGradient(...request.args);
        const judgedLogits = judgeSession ? await judged(request.args[0], request.args[1]) : logits;
        reply = { id: request.id, arrays: [grad.slice(), judgedLogits.slice()] };
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
  // The fused step's logits come from the gradient model: with a judge the attack takes the gradient path.
  port.postMessage({ ready: true, linfStep: classifier.linfStep !== undefined && !judgeSession });
}

void main().catch((e) => parentPort!.postMessage({ ready: false, error: (e as Error).message }));
