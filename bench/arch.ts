/**
 * Real architectures: the library's PGD with 10 steps and no random start (L∞, step 2.5·eps/10,
 * per-sample early stop and `--lanes auto` as `evaluate` runs it by default) on torchvision's
 * resnet18 and mobilenet_v2 at 64×64×3 (random seeded weights, BatchNorm statistics calibrated on
 * the images, eval mode, exported by torch.onnx.export with its defaults: BatchNorm folded), beside
 * the same algorithm in PyTorch (bench/torch_arch.py, the torchvision module with the same weights,
 * MKL-DNN convolutions; --fold-bn folds BatchNorm there too) on the same images, batch and threads,
 * the two sides alternating full passes. Robust accuracy must be identical (asserted, per image).
 * It also reports the share of a measured peak: a large MatMul on onnxruntime on the same threads.
 *   npm run bench:arch -- [--arch resnet18|mobilenet_v2] [--threads 2] [--batch 50] [--limit 200] [--eps E] [--rounds 3] [--lanes auto|N] [--fold-bn]
 * The models come from `/usr/bin/python3 scripts/export_arch_fixtures.py --bench` (run on first use).
 */
import { existsSync, readFileSync } from 'node:fs';
import { freemem, availableParallelism } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { runAttack } from '../src/core/attacks/run';
import { openClassifier, onnxClassifier, laneInit } from '../src/core/eval/model-session';
import { buildGradientModel } from '../src/core/onnx/autodiff';
import { encodeModel, type ModelProto } from '../src/core/onnx/proto';
import { tensorValueInfo } from '../src/core/onnx/cut';
import { parseNpy } from '../src/core/data/npy';
import { chooseLanes } from '../src/core/runtime/lane-count';
import { OnnxLanes } from '../src/core/runtime/lanes';
import { createSession } from '../src/core/runtime/session';
import type { Classifier } from '../src/core/attacks/types';
import { flag, median, ROOT } from './common';
import { flopsPerSample } from './flops';

const PYTHON = '/usr/bin/python3';
const CACHE = path.join(ROOT, '.rlab-cache', 'arch-bench');
const ARCHS = ['resnet18', 'mobilenet_v2'] as const;
/**
 * Radii at which about half the images stay robust (55% and 52%): random networks are far more
 * fragile than trained ones, mobilenet_v2 most. A tiny radius would make every image survive all
 * 10 steps, a large one fool them all at the first; both hide the early stop's work pattern.
 */
const DEFAULT_EPS: Record<string, number> = { resnet18: 0.0002, mobilenet_v2: 0.00001 };

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** The PyTorch side as a long-lived process: `attack(i)` runs the early-stop PGD on batch i there, timed there. */
class TorchArch {
  private constructor(
    private readonly send: (line: string) => void,
    private readonly next: () => Promise<string>,
    readonly close: () => void,
    readonly version: string,
  ) {}

  static async start(args: string[]): Promise<TorchArch> {
    const child = spawn(PYTHON, [path.join(ROOT, 'bench', 'torch_arch.py'), ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await lines.next();
      if (r.done) throw new Error(`bench/torch_arch.py exited: ${stderr.trim().split('\n').pop()}`);
      return r.value as string;
    };
    const ready = JSON.parse(await next()) as { torch: string };
    return new TorchArch(
      (l) => child.stdin.write(`${l}\n`),
      next,
      () => child.stdin.end(),
      ready.torch,
    );
  }

  async attack(batch: number): Promise<{ seconds: number; cpuSeconds: number; robust: number[]; gradRows: number; forwardRows: number }> {
    this.send(JSON.stringify({ batch }));
    return JSON.parse(await this.next());
  }
}

/** GFLOP/s of a 2048³ MatMul on onnxruntime with `threads` threads, best of 5 runs: the measured peak. */
async function measuredPeak(threads: number): Promise<number> {
  const n = 2048;
  const model: ModelProto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'peak',
      node: [{ opType: 'MatMul', input: ['a', 'b'], output: ['c'] }],
      input: [tensorValueInfo('a', [n, n]), tensorValueInfo('b', [n, n])],
      output: [tensorValueInfo('c', [n, n])],
    },
  };
  const s = await createSession(encodeModel(model), { ep: 'cpu', threads });
  const a = new ort.Tensor(
    'float32',
    Float32Array.from({ length: n * n }, (_, i) => (i % 7) / 7),
    [n, n],
  );
  let best = Infinity;
  for (let r = 0; r < 6; r++) {
    const t0 = performance.now();
    await s.run({ a, b: a });
    if (r > 0) best = Math.min(best, (performance.now() - t0) / 1000);
  }
  await s.release();
  return (2 * n ** 3) / best / 1e9;
}

function ensureModels(archs: readonly string[], count: number): void {
  const ok = archs.every((a) => {
    const meta = path.join(CACHE, a, 'meta.json');
    return existsSync(meta) && (JSON.parse(readFileSync(meta, 'utf8')) as { images: number }).images >= count;
  });
  if (ok) return;
  const args = ['scripts/export_arch_fixtures.py', '--bench', '--images', String(Math.max(200, count)), ...archs.flatMap((a) => ['--arch', a])];
  const r = spawnSync(PYTHON, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${PYTHON} ${args.join(' ')} failed (needs Debian's python3-torch, python3-torchvision, python3-onnx):\n${r.stderr}`);
}

async function benchArch(arch: string, peak: number) {
  const threads = flag('threads', 2),
    batch = flag('batch', 50),
    limit = flag('limit', 200),
    eps = flag('eps', DEFAULT_EPS[arch]),
    rounds = flag('rounds', 3),
    steps = 10;
  const dir = path.join(CACHE, arch);
  const xs = parseNpy(readFileSync(path.join(dir, 'x.npy')), 'x.npy');
  const count = Math.min(limit, xs.shape[0]);
  const d = 3 * 64 * 64;
  const x = Float32Array.from((xs.data as Float32Array).subarray(0, count * d));
  const labels = Int32Array.from(Array.from(parseNpy(readFileSync(path.join(dir, 'labels.npy')), 'labels.npy').data as ArrayLike<number>).slice(0, count));
  const data = { x, labels, count };

  const sessionOptions = { ep: 'cpu' as const, threads };
  const m = await openClassifier(path.join(dir, 'model.onnx'), sessionOptions);
  const classifier = onnxClassifier(m, sessionOptions);
  // The lanes `evaluate` picks by default (stages/attacks.ts: laneChoiceFor, budget half the free memory up to 8 GiB).
  const requested = option('lanes') ?? 'auto';
  const choice = chooseLanes({
    requested: requested === 'auto' ? 'auto' : Number(requested),
    cores: availableParallelism(),
    threads,
    provider: 'cpu',
    modelBytes: m.loaded.bytes.length,
    shapes: m.graph.shapes,
    batchSize: batch,
    samples: count,
    memoryBudget: Math.min(freemem() / 2, 8 * 2 ** 30),
  });
  const pool = choice.lanes > 1 ? await OnnxLanes.start(laneInit(m, { ...sessionOptions, threads: choice.threadsPerLane }), choice.lanes) : undefined;
  const engines: Classifier[] = pool ? [...pool.lanes] : [classifier];
  const config = { attack: 'pgd', norm: 'linf', eps, steps, randomStart: false } as const;
  // Warm-up (builds every lane's step session): one batch per engine, one step.
  for (const engine of engines)
    await runAttack(
      engine,
      { x: x.subarray(0, batch * d), labels: labels.subarray(0, batch), count: batch },
      { ...config, steps: 1 },
      { batchSize: batch, seed: 0 },
    );

  const torch = await TorchArch.start([
    '--dir',
    dir,
    '--arch',
    arch,
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--limit',
    String(count),
    '--eps',
    String(eps),
    '--steps',
    String(steps),
    ...(process.argv.includes('--fold-bn') ? ['--fuse-bn'] : []),
  ]);
  const idle = () => new Promise((resolve) => setTimeout(resolve, flag('pause-ms', 500)));
  const batches = Math.ceil(count / batch);
  const results: { ours: number; torch: number; oursCpu: number; torchCpu: number }[] = [];
  let ours: Awaited<ReturnType<typeof runAttack>> | undefined;
  let torchRobust: number[] = [];
  let torchRows = { grad: 0, forward: 0 };
  for (let r = 0; r < rounds; r++) {
    await idle();
    const t0 = performance.now(),
      c0 = process.cpuUsage(); // this process and its lane threads
    ours = await runAttack(classifier, data, config, { batchSize: batch, seed: 0, lanes: pool?.lanes });
    const oursSeconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(c0);
    const oursCpu = (cpu.user + cpu.system) / 1e6;
    await idle();
    let torchSeconds = 0,
      torchCpu = 0;
    torchRobust = [];
    torchRows = { grad: 0, forward: 0 };
    for (let b = 0; b < batches; b++) {
      const ref = await torch.attack(b);
      torchSeconds += ref.seconds;
      torchCpu += ref.cpuSeconds;
      torchRobust.push(...ref.robust);
      torchRows.grad += ref.gradRows;
      torchRows.forward += ref.forwardRows;
    }
    results.push({ ours: count / oursSeconds, torch: count / torchSeconds, oursCpu, torchCpu });
  }
  torch.close();

  const differ = [...ours!.robust].flatMap((v, i) => (v !== torchRobust[i] ? [i] : []));
  const oursAcc = ours!.robust.reduce((a, b) => a + b, 0) / count;
  const torchAcc = torchRobust.reduce((a, b) => a + b, 0) / count;
  const gradFlops = await flopsPerSample(buildGradientModel(m.loaded.model, m.graph.shapes, { kind: 'loss', loss: 'ce-sum' }).model);
  const fwdFlops = await flopsPerSample(m.loaded.model);
  // Work of one pass: the clean forward pass, every forward+backward row, every final forward row.
  // The algorithm's work (the same on both sides): the input gradient costs what the forward does,
  // so forward+backward is 2x forward. The generated graph may run more (zero taps of the
  // stride-2 phase kernels, rules/conv.ts); that is overhead, not work.
  const work = count * fwdFlops + ours!.gradientEvaluations * 2 * fwdFlops + ours!.queries * fwdFlops;
  const oursRate = median(results.map((r) => r.ours));
  const achieved = (oursRate / count) * work * 1e-9;
  const ratios = results.map((r) => r.ours / r.torch);
  const fmt = (v: number) => v.toFixed(1);
  console.log(
    `${arch} (torchvision, 64×64×3, 10 classes, BN folded by torch.onnx.export): PGD-${steps} L∞ eps ${eps}, no random start, per-sample early stop, ${count} images, batch ${batch}, ${threads} threads`,
  );
  console.log(
    `  robustness-lab (${choice.lanes} lane${choice.lanes > 1 ? 's' : ''} of ${choice.threadsPerLane} thread${choice.threadsPerLane > 1 ? 's' : ''}; ${choice.reason}): ${results.map((r) => fmt(r.ours)).join(' / ')} images/s`,
  );
  console.log(`  PyTorch ${torch.version}: ${results.map((r) => fmt(r.torch)).join(' / ')} images/s`);
  console.log(`  ratio per round: ${ratios.map((v) => v.toFixed(2)).join(' / ')}; median ${median(ratios).toFixed(2)}x`);
  // On a shared machine the wall-clock ratio swings with the other jobs (two OpenMP threads that wait on each other suffer more than two
  // independent lanes); CPU seconds per image, every thread of each process counted (spin-waits included), is a steadier second view.
  const cpuRatios = results.map((r) => r.torchCpu / r.oursCpu);
  console.log(
    `  CPU seconds per pass (all threads): ours ${results.map((r) => r.oursCpu.toFixed(1)).join(' / ')}, PyTorch ${results.map((r) => r.torchCpu.toFixed(1)).join(' / ')}; CPU-time ratio median ${median(cpuRatios).toFixed(2)}x`,
  );
  console.log(
    `  robust accuracy: ours ${(100 * oursAcc).toFixed(1)}%, PyTorch ${(100 * torchAcc).toFixed(1)}%; gradient rows ${ours!.gradientEvaluations} vs ${torchRows.grad}${differ.length ? `; DIFFERENT on images ${differ.slice(0, 10).join(', ')}` : ', identical per image'}`,
  );
  console.log(
    `  FLOPs per image: forward ${(fwdFlops / 1e6).toFixed(0)} M, forward+input-gradient ${((2 * fwdFlops) / 1e6).toFixed(0)} M (the generated graph runs ${(gradFlops / 1e6).toFixed(0)} M); ${achieved.toFixed(1)} GFLOP/s achieved (median round) = ${((100 * achieved) / peak).toFixed(0)}% of the measured ${peak.toFixed(0)} GFLOP/s peak`,
  );
  await pool?.release();
  await classifier.release();
  await m.session.release();
  if (differ.length) process.exitCode = 1;
  return median(ratios);
}

async function main() {
  const which = option('arch');
  const archs = which ? [which] : [...ARCHS];
  ensureModels(archs, flag('limit', 200));
  const threads = flag('threads', 2);
  const peak = await measuredPeak(threads);
  console.log(`measured peak: ${peak.toFixed(0)} GFLOP/s (2048³ MatMul on onnxruntime, ${threads} threads, best of 5)`);
  for (const arch of archs) await benchArch(arch, peak);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
