/**
 * The compute process. The extension forks it so that onnxruntime never runs on the extension
 * host's thread and a native crash (or running out of memory) takes down only this process.
 * It imports the engine; the extension itself never does.
 */
import { UserError } from '../core/errors';
import { CancelledError, runEvaluation } from '../core/eval/evaluate';
import { inspectModel } from '../core/eval/model-session';
import type { FromWorker, ModelSummary, ToWorker } from '../protocol/worker-messages';

const running = new Map<number, AbortController>();

function send(message: FromWorker): void {
  process.send?.(message);
}

function fail(id: number, e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  // Unexpected errors keep their stack for the log; user errors are already phrased for people.
  const message = err instanceof UserError || err instanceof CancelledError ? err.message : err.stack ?? err.message;
  send({ type: 'error', id, message, userError: err instanceof UserError, cancelled: err instanceof CancelledError });
}

async function inspect(path: string): Promise<ModelSummary> {
  const { graph } = await inspectModel(path, 1);
  const { shapes: _shapes, ...summary } = graph;
  return summary;
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'cancel':
      running.get(message.id)?.abort();
      return;
    case 'inspect': {
      const { id } = message;
      inspect(message.model).then((model) => send({ type: 'inspected', id, model }), (e: unknown) => fail(id, e));
      return;
    }
    case 'exportDefended':
      // The engine has no export of defended models yet; the UI, protocol and progress are ready for it.
      fail(
        message.id,
        new UserError(
          'Exporting a defended model is not available in this version of the engine yet.',
          'Run the experiment to evaluate the defense; export arrives with the defense engine.',
        ),
      );
      return;
    case 'evaluate': {
      const { id, config } = message;
      const controller = new AbortController();
      running.set(id, controller);
      runEvaluation(config, {
        signal: controller.signal,
        onProgress: (progress) => send({ type: 'progress', id, progress }),
        onLog: (line) => send({ type: 'log', id, line }),
      })
        .then((result) => send({ type: 'result', id, result }), (e: unknown) => fail(id, e))
        .finally(() => running.delete(id));
      return;
    }
  }
});

// The extension went away (window closed, extension host crashed): stop computing for nobody.
process.on('disconnect', () => process.exit(0));
