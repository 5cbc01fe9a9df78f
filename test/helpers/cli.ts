/** Runs the built CLI (dist/cli.js) the way a user does, capturing its output and exit code. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DEMO_MODEL = path.join(ROOT, 'demo', 'fashion-cnn.onnx');
export const DEMO_TEST_IMAGES = path.join(ROOT, 'demo', 'data', 't10k-images-idx3-ubyte.gz');
export const DEMO_TEST_LABELS = path.join(ROOT, 'demo', 'data', 't10k-labels-idx1-ubyte.gz');
export const DEMO_TRAIN_IMAGES = path.join(ROOT, 'demo', 'data', 'train-images-idx3-ubyte.gz');
export const DEMO_TRAIN_LABELS = path.join(ROOT, 'demo', 'data', 'train-labels-idx1-ubyte.gz');

export function cli(args: string[], options: { cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'robustness-lab.js'), ...args], {
    cwd: options.cwd ?? ROOT,
    encoding: 'utf8',
    timeout: 300_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
