/**
 * PGD-10 L∞ on the demo model: the generated forward+backward ONNX graph on onnxruntime beside the
 * same PGD in PyTorch (bench/torch_reference.py), same images, batch, threads and steps, in one run.
 * Both sides run the plain algorithm (random start, 10 sign steps, no early stopping), so the work
 * is identical. Ours takes each step with the engine's fused L∞ step (forward, backward and the
 * projected sign step in one onnxruntime run), as the library's BIM/PGD do; the library's PGD
 * (which also stops per sample once fooled) is timed as well.
 *   npm run bench:pgd -- [--threads 2] [--batch 100] [--limit 1000] [--eps 0.03] [--rounds 5]
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { runAttack } from '../src/core/attacks/run';
import { openClassifier, argmaxRows } from '../src/core/eval/model-session';
import { buildGradientModel } from '../src/core/onnx/autodiff';
import { OnnxClassifier } from '../src/core/runtime/onnx-classifier';
import { Rng } from '../src/core/random';
import { DEMO, demoData, flag, median, torchReference } from './common';
import { flopsPerSample } from './flops';

async function main() {
  const threads = flag('threads', 2), batch = flag('batch', 100), limit = flag('limit', 1000), eps = flag('eps', 0.03), steps = 10;
  const alpha = (2.5 * eps) / steps;
  const data = await demoData(limit);
  const m = await openClassifier(DEMO.model, { ep: 'cpu', threads });
  const classifier = new OnnxClassifier({ model: m.loaded.model, shapes: m.graph.shapes, session: m.session, input: m.input, output: m.output, sampleDims: m.sampleDims, numClasses: m.numClasses, sessionOptions: { ep: 'cpu', threads } });
  const d = 784;
  const warm = data.x.subarray(0, batch * d);
  await classifier.linfStep!(warm, warm, batch, data.labels.subarray(0, batch), 'ce-sum', { alpha, eps, range: [0, 1] }); // warm-up, builds the session

  /** One timed run of plain PGD over all images; returns images/s and robust accuracy. */
  const plainPgd = async () => {
    const rng = new Rng(0);
    const adv = new Float32Array(data.x.length);
    const t0 = performance.now();
    for (let start = 0; start < data.count; start += batch) {
      const n = Math.min(batch, data.count - start);
      const x = data.x.subarray(start * d, (start + n) * d);
      const labels = data.labels.subarray(start, start + n);
      let xt: Float32Array = x.map((v) => Math.min(1, Math.max(0, v + (rng.next() * 2 - 1) * eps)));
      for (let s = 0; s < steps; s++) xt = (await classifier.linfStep!(xt, x, n, labels, 'ce-sum', { alpha, eps, range: [0, 1] })).next;
      adv.set(xt, start * d);
    }
    const imagesPerSecond = data.count / ((performance.now() - t0) / 1000);
    const predictions = argmaxRows(await classifier.logits(adv, data.count), 10);
    return { imagesPerSecond, accuracy: predictions.filter((p, i) => p === data.labels[i]).length / data.count };
  };

  // Rounds (default 5) alternate ours and PyTorch, so a noisy stretch of a shared machine hits both sides; the median ratio is the figure.
  const torchArgs = ['--task', 'pgd', '--batch', String(batch), '--threads', String(threads), '--limit', String(data.count), '--steps', String(steps), '--eps', String(eps)];
  const rounds: { ours: number; torch?: number }[] = [];
  let oursAccuracy = 0, torchAccuracy: number | undefined, torchVersion: string | undefined, skipped: string | undefined;
  for (let r = 0; r < flag('rounds', 5); r++) {
    const ours = await plainPgd();
    oursAccuracy = ours.accuracy;
    const torch = torchReference(torchArgs);
    if ('skipped' in torch) skipped = torch.skipped;
    else [torchAccuracy, torchVersion] = [torch.accuracy, torch.torch];
    rounds.push({ ours: ours.imagesPerSecond, torch: 'skipped' in torch ? undefined : torch.imagesPerSecond });
  }

  const t1 = performance.now();
  const library = await runAttack(classifier, data, { attack: 'pgd', norm: 'linf', eps, steps, restarts: 1 }, { batchSize: batch, seed: 0 });
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
  console.log(`PGD-${steps} L∞ eps ${eps} (step ${alpha}), demo model, ${data.count} images, batch ${batch}, ${threads} threads, ${rounds.length} rounds`);
  console.log(`  robust accuracy: ours ${(100 * oursAccuracy).toFixed(1)}%${torchAccuracy === undefined ? '' : `, PyTorch ${(100 * torchAccuracy).toFixed(1)}%`} (random starts differ)`);
  console.log(`  robustness-lab (generated ONNX gradients, fused step): ${rounds.map((r) => fmt(r.ours)).join(' / ')} images/s`);
  if (skipped) console.log(`  PyTorch reference: skipped (${skipped})`);
  else {
    const ratios = rounds.map((r) => r.ours / r.torch!);
    console.log(`  PyTorch ${torchVersion}: ${rounds.map((r) => fmt(r.torch!)).join(' / ')} images/s`);
    console.log(`  ratio per round: ${ratios.map((v) => v.toFixed(2)).join(' / ')}; median ${median(ratios).toFixed(2)}x`);
  }
  console.log(`  library PGD with per-sample early stopping: ${(data.count / librarySeconds).toFixed(0)} images/s, robust accuracy ${(100 * library.accuracy).toFixed(1)}%`);
  console.log(`  forward+backward: ${(flopsPerImage / 1e6).toFixed(1)} MFLOP per image, ${achieved.toFixed(1)} GFLOP/s achieved (median round) = ${((100 * achieved) / peak).toFixed(1)}% of a ${peak.toFixed(0)} GFLOP/s fp32 peak (${threads} cores × ${ghz.toFixed(2)} GHz × ${simd * 2} flop/cycle)`);
  await classifier.release();
  await m.session.release();
}

void main();
