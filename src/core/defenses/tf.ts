/**
 * Loading TensorFlow.js for the defenses that train something (the dAE): the native
 * `@tensorflow/tfjs-node` backend when it is installed (an optionalDependency: it needs a prebuilt
 * libtensorflow that some machines cannot install), and plain `@tensorflow/tfjs` (pure-JavaScript
 * 'cpu' backend, same results, slower) otherwise. Loaded once per process, on first use; one log
 * line says which backend runs.
 */
import type * as TF from '@tensorflow/tfjs';

export type Tf = typeof TF;

export interface TfRuntime {
  tf: Tf;
  /** The package the API came from. */
  packageName: '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  /** The active backend ('tensorflow' for tfjs-node, 'cpu' for plain tfjs). */
  backend: string;
  /** Why tfjs-node is not used, when it is not. */
  fallbackReason?: string;
}

let loading: Promise<TfRuntime> | undefined;

/** The logger the first load reports to; `loadTf(log)` replaces it for that first load. */
const defaultLog = (message: string): void => console.error(message);

/**
 * TensorFlow.js, loaded once. `log` receives one line naming the package and backend (by default
 * on stderr, so that CLI JSON output on stdout stays clean). `prefer: 'js'` skips tfjs-node (used
 * to compare backends).
 */
export function loadTf(log: (message: string) => void = defaultLog, prefer: 'native' | 'js' = 'native'): Promise<TfRuntime> {
  loading ??= load(log, prefer);
  return loading;
}

async function load(log: (message: string) => void, prefer: 'native' | 'js'): Promise<TfRuntime> {
  let fallbackReason: string | undefined = 'skipped on request';
  if (prefer === 'native') {
    try {
      // A plain require so that bundlers leave the optional native package external.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const tf = require('@tensorflow/tfjs-node') as Tf;
      await tf.ready();
      quiet(tf);
      const runtime: TfRuntime = { tf, packageName: '@tensorflow/tfjs-node', backend: tf.getBackend() };
      log(`TensorFlow.js: @tensorflow/tfjs-node (native backend '${runtime.backend}').`);
      return runtime;
    } catch (e) {
      fallbackReason = firstLine((e as Error).message);
    }
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tf = require('@tensorflow/tfjs') as Tf;
  quiet(tf);
  await tf.setBackend('cpu');
  await tf.ready();
  const runtime: TfRuntime = { tf, packageName: '@tensorflow/tfjs', backend: tf.getBackend(), fallbackReason };
  log(`TensorFlow.js: @tensorflow/tfjs (pure-JavaScript backend '${runtime.backend}'; @tensorflow/tfjs-node not available: ${fallbackReason}).`);
  return runtime;
}

/** No "install tfjs-node" banner or other console chatter from tfjs itself: we log our own line. */
function quiet(tf: Tf): void {
  try {
    tf.env().set('PROD', true);
  } catch {
    // Flag unknown in this version: harmless.
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 200);
}
