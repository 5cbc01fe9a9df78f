/** Shared pieces of the benchmarks: the demo data, the PyTorch reference run, and the report. */
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadDataset, preprocess } from '../src/core/data';

export const ROOT = path.resolve(__dirname, '..');
export const DEMO = {
  model: path.join(ROOT, 'demo', 'fashion-cnn.onnx'),
  images: path.join(ROOT, 'demo', 'data', 't10k-images-idx3-ubyte.gz'),
  labels: path.join(ROOT, 'demo', 'data', 't10k-labels-idx1-ubyte.gz'),
  trainImages: path.join(ROOT, 'demo', 'data', 'train-images-idx3-ubyte.gz'),
  trainLabels: path.join(ROOT, 'demo', 'data', 'train-labels-idx1-ubyte.gz'),
};

export function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export async function demoData(limit: number): Promise<{ x: Float32Array; labels: Int32Array; count: number }> {
  const raw = await loadDataset({ path: DEMO.images, labelsPath: DEMO.labels, limit });
  return { x: preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 }), labels: raw.labels!, count: raw.count };
}

/** Runs bench/torch_reference.py with Debian's python3-torch, or explains why it cannot. */
export function torchReference(args: string[]): { imagesPerSecond: number; accuracy?: number; torch?: string } | { skipped: string } {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return { skipped: `${python} not found` };
  const r = spawnSync(python, [path.join(ROOT, 'bench', 'torch_reference.py'), ...args], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) return { skipped: `PyTorch reference failed (install Debian's python3-torch): ${(r.stderr || '').trim().split('\n').pop()}` };
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/**
 * bench/torch_reference.py --task pgd-serve as a long-lived process: `pgd(i)` runs PGD on batch i
 * there and resolves with PyTorch's own timing, so a bench can alternate with it batch by batch.
 */
export class TorchPgdServer {
  private constructor(
    private readonly send: (line: string) => void,
    private readonly next: () => Promise<string>,
    private readonly stop: () => void,
    readonly version: string,
  ) {}

  static async start(args: string[]): Promise<TorchPgdServer | { skipped: string }> {
    const python = '/usr/bin/python3';
    if (!existsSync(python)) return { skipped: `${python} not found` };
    const child = spawn(python, [path.join(ROOT, 'bench', 'torch_reference.py'), '--task', 'pgd-serve', ...args], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await lines.next();
      if (r.done) throw new Error(`PyTorch reference exited: ${stderr.trim().split('\n').pop()}`);
      return r.value as string;
    };
    try {
      const ready = JSON.parse(await next()) as { torch: string };
      return new TorchPgdServer(
        (line) => child.stdin.write(`${line}\n`),
        next,
        () => child.stdin.end(),
        ready.torch,
      );
    } catch (e) {
      return { skipped: `PyTorch reference failed (install Debian's python3-torch): ${(e as Error).message}` };
    }
  }

  async pgd(batch: number): Promise<{ seconds: number; correct: number; count: number }> {
    this.send(JSON.stringify({ batch }));
    return JSON.parse(await this.next());
  }

  close(): void {
    this.stop();
  }
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
