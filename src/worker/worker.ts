/**
 * The compute process. The extension forks it so that onnxruntime never runs on the extension
 * host's thread and a native crash takes down only this process.
 */
import { UserError } from '../core/errors';
import { CancelledError, runEvaluation } from '../core/eval/evaluate';
import type { FromWorker, ToWorker } from '../protocol/worker-messages';

const running = new Map<number, AbortController>();

function send(message: FromWorker): void {
  process.send?.(message);
}

process.on('message', (message: ToWorker) => {
  if (message.type === 'cancel') {
    running.get(message.id)?.abort();
    return;
  }
  if (message.type === 'evaluate') {
    const { id, config } = message;
    const controller = new AbortController();
    running.set(id, controller);
    runEvaluation(config, {
      signal: controller.signal,
      onProgress: (progress) => send({ type: 'progress', id, progress }),
      onLog: (line) => send({ type: 'log', id, line }),
    })
      .then((result) => send({ type: 'result', id, result }))
      .catch((e: unknown) =>
        send({ type: 'error', id, message: (e as Error).message, userError: e instanceof UserError, cancelled: e instanceof CancelledError }),
      )
      .finally(() => running.delete(id));
  }
});

process.on('disconnect', () => process.exit(0));
