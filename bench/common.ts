/** Shared pieces of the benchmarks: the demo data, the PyTorch reference run, and the report. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadDataset, preprocess } from '../src/core/data';

export const ROOT = path.resolve(__dirname, '..');
export const DEMO = {
  model: path.join(ROOT, 'demo', 'fashion-cnn.onnx'),
  images: path.join(ROOT, 'demo', 'data', 't10k-images-idx3-ubyte.gz'),
  labels: path.join(ROOT, 'demo', 'data', 't10k-labels-idx1-ubyte.gz'),
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

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
