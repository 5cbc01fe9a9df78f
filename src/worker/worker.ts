/**
 * The compute process. The extension forks it so that onnxruntime never runs on the extension
 * host's thread and a native crash (or running out of memory) takes down only this process.
 * It imports the engine; the extension itself never does.
 */
import { isCancelled } from '../core/cancel';
import { UserError } from '../core/errors';
import { runEvaluation, type RunHooks } from '../core/eval/evaluate';
import { exportDefended } from '../core/eval/export';
import { inspectModel } from '../core/eval/model-session';
import { loadModel } from '../core/model/load';
import { setAllowedRoots } from '../core/paths';
import { loadDataset } from '../core/data';
import type { DataDescription, FromWorker, ModelSummary, ToWorker } from '../protocol/worker-messages';
import { parseLaunchArgs } from './launch';
import { nodeAttributes } from './node-attributes';

// The extension starts this process in the workspace folder (fork's cwd) and names the folders it
// may read models and data from; every loader checks against them (src/core/paths.ts).
const { roots } = parseLaunchArgs(process.argv.slice(2));
setAllowedRoots(roots.length ? roots : undefined);

const running = new Map<number, AbortController>();

function send(message: FromWorker): void {
  process.send?.(message);
}

function fail(id: number, e: unknown): void {
  const err = e instanceof Error ? e : new Error(String(e));
  // Cancellation in any form (CancelledError, an AbortError DOMException from a fit) is "cancelled", not a crash.
  const cancelled = isCancelled(err);
  // Unexpected errors keep their stack for the log; user errors are already phrased for people.
  const message = cancelled
    ? err.name === 'CancelledError'
      ? err.message
      : 'The run was cancelled.'
    : err instanceof UserError
      ? err.message
      : (err.stack ?? err.message);
  send({ type: 'error', id, message, userError: err instanceof UserError, cancelled });
}

async function inspect(path: string): Promise<ModelSummary> {
  const { graph } = await inspectModel(path, 1);
  const { shapes: _shapes, ...summary } = graph;
  return summary;
}

/** Loads the dataset (labels checked against the images' count, the loader's own check) and says what it holds. */
async function describeData(data: string, labels?: string): Promise<DataDescription> {
  const set = await loadDataset({ path: data, labelsPath: labels });
  const { count, height, width, channels } = set;
  return { count, height, width, channels, labelled: set.labels !== undefined, format: set.info.format };
}

/** Runs a cancellable request: its hooks report progress and log lines, its answer ends it. */
function track(id: number, run: (hooks: RunHooks) => Promise<FromWorker>): void {
  const controller = new AbortController();
  running.set(id, controller);
  run({
    signal: controller.signal,
    onProgress: (progress) => send({ type: 'progress', id, progress }),
    onLog: (line) => send({ type: 'log', id, line }),
  })
    .then(send, (e: unknown) => fail(id, e))
    .finally(() => running.delete(id));
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'cancel':
      running.get(message.id)?.abort();
      return;
    case 'inspect': {
      const { id } = message;
      inspect(message.model).then(
        (model) => send({ type: 'inspected', id, model }),
        (e: unknown) => fail(id, e),
      );
      return;
    }
    case 'nodeAttributes': {
      const { id } = message;
      // Loading only (no shape probe): the attributes are in the graph itself.
      Promise.resolve()
        .then(() => nodeAttributes(loadModel(message.model).model.graph?.node ?? []))
        .then(
          (attributes) => send({ type: 'nodeAttributes', id, attributes }),
          (e: unknown) => fail(id, e),
        );
      return;
    }
    case 'describeData': {
      const { id } = message;
      describeData(message.data, message.labels).then(
        (description) => send({ type: 'dataDescribed', id, description }),
        (e: unknown) => fail(id, e),
      );
      return;
    }
    case 'evaluate': {
      const { id, config } = message;
      track(id, async (hooks) => ({ type: 'result', id, result: await runEvaluation(config, hooks) }));
      return;
    }
    case 'exportDefended': {
      const { id, config, out } = message;
      track(id, async (hooks) => {
        if (!config.defense) throw new UserError('The experiment has no defense to export.', 'Insert one at a layer first.');
        const { model, defense, seed, threads, batchSize, cacheDir, preprocessing } = config;
        const exported = await exportDefended({ model, defense, out, seed, threads, batchSize, cacheDir, preprocessing }, hooks);
        return { type: 'exported', id, path: exported.out };
      });
      return;
    }
  }
});

// The extension went away (window closed, extension host crashed): stop computing for nobody.
process.on('disconnect', () => process.exit(0));

// SIGTERM/SIGINT (the extension or the system stopping us): cancel every request, then go. Writes
// are atomic, so leaving now never leaves half a file.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    for (const controller of running.values()) controller.abort();
    setTimeout(() => process.exit(signal === 'SIGTERM' ? 143 : 130), running.size ? 1000 : 0).unref();
  });
}
