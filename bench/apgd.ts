/**
 * APGD-CE (100 iterations, L∞) on the demo model: the library's APGD (generated ONNX gradients on
 * onnxruntime, the step in JavaScript) beside the same algorithm in PyTorch (bench/torch_apgd.py,
 * the reference of scripts/reference_apgd.py), same images, batch, threads and iterations, in one
 * run, the two sides alternating full passes over the images (each times its own work).
 * Both sides start at the clean input (no random start) and drop a sample at its first
 * misclassified iterate, so they do the same work (the gradient evaluations are printed); only
 * samples classified correctly clean are attacked, and the clean forward pass is timed on both.
 * Ours runs in lanes (worker threads with their own sessions, as `evaluate --lanes`), each taking
 * the next batch when free; --lanes 1 is one session on all threads.
 *   node --import tsx bench/apgd.ts [--threads 2] [--batch 100] [--limit 1000] [--eps 0.03] [--steps 100] [--rounds 3] [--pause-ms 500] [--lanes 2]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { apgdCe } from '../src/core/attacks/apgd';
import type { Classifier } from '../src/core/attacks/types';
import { argmaxRows, openClassifier, onnxClassifier, laneInit } from '../src/core/eval/model-session';
import { OnnxLanes } from '../src/core/runtime/lanes';
import { DEMO, ROOT, demoData, flag, median } from './common';

interface TorchApgd {
  version: string;
  run(batch: number): Promise<{ seconds: number; correct: number; count: number; gradients: number }>;
  close(): void;
}

/** bench/torch_apgd.py as a long-lived process: `run(i)` attacks batch i there and resolves with PyTorch's own timing. */
async function startTorch(args: string[]): Promise<TorchApgd | { skipped: string }> {
  const python = '/usr/bin/python3';
  if (!existsSync(python)) return { skipped: `${python} not found` };
  const child = spawn(python, [path.join(ROOT, 'bench', 'torch_apgd.py'), ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
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
    return {
      version: ready.torch,
      run: async (batch: number) => {
        child.stdin.write(`${JSON.stringify({ batch })}\n`);
        return JSON.parse(await next()) as { seconds: number; correct: number; count: number; gradients: number };
      },
      close: () => child.stdin.end(),
    };
  } catch (e) {
    return { skipped: `PyTorch reference failed (install Debian's python3-torch): ${(e as Error).message}` };
  }
}

async function main() {
  const threads = flag('threads', 2),
    batch = flag('batch', 100),
    limit = flag('limit', 1000),
    eps = flag('eps', 0.03),
    steps = flag('steps', 100);
  const data = await demoData(limit);
  const d = 784;
  const m = await openClassifier(DEMO.model, { ep: 'cpu', threads });
  const laneCount = flag('lanes', 2);
  const pool = laneCount > 1 ? await OnnxLanes.start(laneInit(m, { ep: 'cpu', threads: Math.max(1, Math.floor(threads / laneCount)) }), laneCount) : undefined;
  const classifier = pool ? undefined : onnxClassifier(m, { ep: 'cpu', threads });
  const engines: Classifier[] = pool ? [...pool.lanes] : [classifier!];
  const warm = data.x.subarray(0, batch * d);
  for (const engine of engines) await engine.lossGradient!(warm, batch, data.labels.subarray(0, batch), 'ce-sum'); // builds the sessions

  /** APGD-CE on the samples of batch b classified correctly clean; returns robust samples and gradient evaluations. */
  const oursBatch = async (engine: Classifier, b: number) => {
    const start = b * batch,
      n = Math.min(batch, data.count - start);
    const x = data.x.subarray(start * d, (start + n) * d);
    const labels = data.labels.subarray(start, start + n);
    const predictions = argmaxRows(await engine.logits(x, n), 10);
    const keep = Int32Array.from(Array.from(labels.keys()).filter((i) => predictions[i] === labels[i]));
    if (keep.length === 0) return { correct: 0, gradients: 0 };
    const xs = new Float32Array(keep.length * d);
    keep.forEach((i, r) => xs.set(x.subarray(i * d, (i + 1) * d), r * d));
    const res = await apgdCe(
      engine,
      xs,
      Int32Array.from(keep, (i) => labels[i]),
      { norm: 'linf', eps, steps, randomStart: false, sampleIds: Int32Array.from(keep, (i) => start + i) },
    );
    return { correct: res.fooled.filter((f) => !f).length, gradients: res.gradientEvaluations.reduce((a, v) => a + v, 0) };
  };
  const batches = Math.ceil(data.count / batch);
  const oursPass = async () => {
    let next = 0,
      correct = 0,
      gradients = 0;
    const t0 = performance.now();
    await Promise.all(
      engines.map(async (engine) => {
        while (next < batches) {
          const r = await oursBatch(engine, next++); // not `correct += await …`: that reads `correct` before the await
          correct += r.correct;
          gradients += r.gradients;
        }
      }),
    );
    return { seconds: (performance.now() - t0) / 1000, correct, gradients };
  };

  // Rounds alternate a full pass of ours and a full pass of PyTorch, with a pause before each pass
  // (both runtimes busy-wait after parallel work); the median round is the figure (see bench/pgd.ts).
  const idle = () => new Promise((resolve) => setTimeout(resolve, flag('pause-ms', 500)));
  const torch = await startTorch([
    '--batch',
    String(batch),
    '--threads',
    String(threads),
    '--limit',
    String(data.count),
    '--steps',
    String(steps),
    '--eps',
    String(eps),
  ]);
  const rounds: { ours: number; torch?: number }[] = [];
  let ours = { correct: 0, gradients: 0 },
    ref = { correct: 0, gradients: 0 };
  for (let r = 0; r < flag('rounds', 3); r++) {
    await idle();
    const pass = await oursPass();
    ours = pass;
    let torchSeconds = 0;
    if ('run' in torch) {
      await idle();
      ref = { correct: 0, gradients: 0 };
      for (let b = 0; b < batches; b++) {
        const out = await torch.run(b);
        torchSeconds += out.seconds;
        ref.correct += out.correct;
        ref.gradients += out.gradients;
      }
    }
    rounds.push({ ours: data.count / pass.seconds, torch: 'run' in torch ? data.count / torchSeconds : undefined });
  }
  if ('run' in torch) torch.close();

  const fmt = (v: number) => v.toFixed(1);
  const laneThreads = laneCount > 1 ? Math.max(1, Math.floor(threads / laneCount)) : threads;
  console.log(
    `APGD-CE L∞ eps ${eps}, ${steps} iterations, no random start, demo model, ${data.count} images, batch ${batch}, ${threads} threads, ${rounds.length} rounds alternating with PyTorch`,
  );
  console.log(
    `  robust accuracy: ours ${((100 * ours.correct) / data.count).toFixed(1)}%${'run' in torch ? `, PyTorch ${((100 * ref.correct) / data.count).toFixed(1)}%` : ''}`,
  );
  console.log(`  gradient evaluations: ours ${ours.gradients}${'run' in torch ? `, PyTorch ${ref.gradients}` : ''}`);
  console.log(
    `  robustness-lab (generated ONNX gradients, JavaScript step, ${laneCount} lane${laneCount > 1 ? 's' : ''} of ${laneThreads} thread${laneThreads > 1 ? 's' : ''}): ${rounds.map((r) => fmt(r.ours)).join(' / ')} images/s`,
  );
  if (!('run' in torch)) console.log(`  PyTorch reference: skipped (${torch.skipped})`);
  else {
    const ratios = rounds.map((r) => r.ours / r.torch!);
    console.log(`  PyTorch ${torch.version}: ${rounds.map((r) => fmt(r.torch!)).join(' / ')} images/s`);
    console.log(`  ratio per round: ${ratios.map((v) => v.toFixed(2)).join(' / ')}; median ${median(ratios).toFixed(2)}x`);
  }
  await pool?.release();
  await classifier?.release();
  await m.session.release();
}

void main();
