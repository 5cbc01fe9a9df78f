/**
 * PGD-10 L∞ on the demo model: the generated forward+backward ONNX graph on onnxruntime beside the
 * same PGD in PyTorch (bench/torch_reference.py), same images, batch, threads and steps, in one run,
 * the two sides alternating full passes over the images (each times its own work).
 * Both sides run the plain algorithm (random start, 10 sign steps, no early stopping), so the work
 * is identical. Ours takes each step with the engine's fused L∞ step (forward, backward and the
 * projected sign step in one onnxruntime run), as the library's BIM/PGD do, in lanes (worker threads
 * with their own sessions, as `evaluate --lanes`); the library's PGD (which also stops per sample
 * once fooled) is timed as well.
 *   npm run bench:pgd -- [--threads 2] [--batch 100] [--limit 1000] [--eps 0.03] [--rounds 5] [--pause-ms 500] [--lanes 2]
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { runAttack } from '../src/core/attacks/run';
import { openClassifier, argmaxRows, onnxClassifier, laneInit } from '../src/core/eval/model-session';
import { buildGradientModel } from '../src/core/onnx/autodiff';
import type { Classifier } from '../src/core/attacks/types';
import { OnnxLanes } from '../src/core/runtime/lanes';
import { Rng } from '../src/core/random';
import { DEMO, demoData, flag, median, TorchPgdServer } from './common';
import { flopsPerSample } from './flops';

async function main() {
  const threads = flag('threads', 2),
    batch = flag('batch', 100),
    limit = flag('limit', 1000),
    eps = flag('eps', 0.03),
    steps = 10;
  const alpha = (2.5 * eps) / steps;
  const data = await demoData(limit);
  const m = await openClassifier(DEMO.model, { ep: 'cpu', threads });
  const classifier = onnxClassifier(m, { ep: 'cpu', threads });
  const d = 784;
  // Our side runs in lanes (worker threads with their own single-threaded sessions, as
  // `evaluate --lanes` does), each taking the next batch when free; --lanes 1 is one session on all threads.
  const laneCount = flag('lanes', 2);
  const pool = laneCount > 1 ? await OnnxLanes.start(laneInit(m, { ep: 'cpu', threads: Math.max(1, Math.floor(threads / laneCount)) }), laneCount) : undefined;
  const engines: Classifier[] = pool ? [...pool.lanes] : [classifier];
  const warm = data.x.subarray(0, batch * d);
  for (const engine of engines) await engine.linfStep!(warm, warm, batch, data.labels.subarray(0, batch), 'ce-sum', { alpha, eps, range: [0, 1] }); // builds the sessions

  /** Plain PGD on batch b (random start from the batch's own stream, `steps` fused steps) and the prediction on the result. */
  const oursBatch = async (engine: Classifier, b: number) => {
    const start = b * batch,
      n = Math.min(batch, data.count - start);
    const x = data.x.subarray(start * d, (start + n) * d);
    const labels = data.labels.subarray(start, start + n);
    const rng = new Rng(0).fork(b);
    let xt: Float32Array = x.map((v) => Math.min(1, Math.max(0, v + (rng.next() * 2 - 1) * eps)));
    for (let s = 0; s < steps; s++) xt = (await engine.linfStep!(xt, x, n, labels, 'ce-sum', { alpha, eps, range: [0, 1] })).next;
    const predictions = argmaxRows(await engine.logits(xt, n), 10);
    return predictions.filter((p, i) => p === labels[i]).length;
  };
  /** One timed pass over all batches; returns its wall seconds and the robust count. */
  const oursPass = async () => {
    let next = 0,
      correct = 0;
    const t0 = performance.now();
    await Promise.all(
      engines.map(async (engine) => {
        while (next < batches) {
          const robust = await oursBatch(engine, next++); // not `correct += await …`: that reads `correct` before the await
          correct += robust;
        }
      }),
    );
    return { seconds: (performance.now() - t0) / 1000, correct };
  };

  // Rounds alternate a full pass of ours and a full pass of PyTorch (both warm, each timing its own
  // work), and the median round is the figure: this shared machine's speed drifts by ±25% over
  // seconds. A pause before each pass lets the other side's worker threads stop spinning (OpenMP
  // and onnxruntime both busy-wait after parallel work), so neither starts on an occupied machine.
  const idle = () => new Promise((resolve) => setTimeout(resolve, flag('pause-ms', 500)));
  const batches = Math.ceil(data.count / batch);
  const torch = await TorchPgdServer.start([
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
  let oursCorrect = 0,
    torchCorrect = 0;
  for (let r = 0; r < flag('rounds', 5); r++) {
    await idle();
    const ours = await oursPass();
    oursCorrect = ours.correct;
    let torchSeconds = 0;
    torchCorrect = 0;
    if (torch instanceof TorchPgdServer) {
      await idle();
      for (let b = 0; b < batches; b++) {
        const ref = await torch.pgd(b);
        torchSeconds += ref.seconds;
        torchCorrect += ref.correct;
      }
    }
    rounds.push({ ours: data.count / ours.seconds, torch: torch instanceof TorchPgdServer ? data.count / torchSeconds : undefined });
  }
  if (torch instanceof TorchPgdServer) torch.close();

  const t1 = performance.now();
  const library = await runAttack(
    classifier,
    data,
    { attack: 'pgd', norm: 'linf', eps, steps, restarts: 1 },
    { batchSize: batch, seed: 0, lanes: pool?.lanes },
  );
  const librarySeconds = (performance.now() - t1) / 1000;

  const ours = median(rounds.map((r) => r.ours));
  // FLOPs of one forward+backward pass, counted from the generated graph's Conv/ConvTranspose/Gemm/MatMul nodes.
  const gradModel = buildGradientModel(m.loaded.model, m.graph.shapes, { kind: 'loss', loss: 'ce-sum' });
  const flopsPerImage = await flopsPerSample(gradModel.model);
  const achieved = (ours * steps * flopsPerImage) / 1e9;
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const simd = /avx512f/.test(cpuinfo) ? 32 : 16; // fp32 FMA lanes per cycle and core (two FMA units); 2 flops each
  const ghz = Number(/cpu MHz\s*:\s*([\d.]+)/.exec(cpuinfo)?.[1] ?? cpus()[0].speed) / 1000;
  const peak = threads * ghz * simd * 2;
  const fmt = (v: number) => v.toFixed(0);
  console.log(
    `PGD-${steps} L∞ eps ${eps} (step ${alpha}), demo model, ${data.count} images, batch ${batch}, ${threads} threads, ${rounds.length} rounds alternating with PyTorch`,
  );
  console.log(
    `  robust accuracy: ours ${((100 * oursCorrect) / data.count).toFixed(1)}%${torch instanceof TorchPgdServer ? `, PyTorch ${((100 * torchCorrect) / data.count).toFixed(1)}%` : ''} (random starts differ)`,
  );
  const laneThreads = laneCount > 1 ? Math.max(1, Math.floor(threads / laneCount)) : threads;
  console.log(
    `  robustness-lab (generated ONNX gradients, fused step, ${laneCount} lane${laneCount > 1 ? 's' : ''} of ${laneThreads} thread${laneThreads > 1 ? 's' : ''}): ${rounds.map((r) => fmt(r.ours)).join(' / ')} images/s`,
  );
  if (!(torch instanceof TorchPgdServer)) console.log(`  PyTorch reference: skipped (${torch.skipped})`);
  else {
    const ratios = rounds.map((r) => r.ours / r.torch!);
    console.log(`  PyTorch ${torch.version}: ${rounds.map((r) => fmt(r.torch!)).join(' / ')} images/s`);
    console.log(`  ratio per round: ${ratios.map((v) => v.toFixed(2)).join(' / ')}; median ${median(ratios).toFixed(2)}x`);
  }
  console.log(
    `  library PGD with per-sample early stopping: ${(data.count / librarySeconds).toFixed(0)} images/s, robust accuracy ${(100 * library.accuracy).toFixed(1)}%`,
  );
  console.log(
    `  forward+backward: ${(flopsPerImage / 1e6).toFixed(1)} MFLOP per image, ${achieved.toFixed(1)} GFLOP/s achieved (median round) = ${((100 * achieved) / peak).toFixed(1)}% of a ${peak.toFixed(0)} GFLOP/s fp32 peak (${threads} cores × ${ghz.toFixed(2)} GHz × ${simd * 2} flop/cycle)`,
  );
  await pool?.release();
  await classifier.release();
  await m.session.release();
}

void main();
