/**
 * The adaptive attack on LESCI vq (representation matching on the soft nearest-neighbour surrogate)
 * beside an independent PyTorch implementation of the same defense and attack
 * (scripts/reference_lesci_adaptive.py), same images, reference set, steps and threads, in one run.
 * Both sides do PGD-10 L∞ at eps 0.05 from a random start with early stopping per sample, judged on
 * the real LESCI-vq model; each side times its attack only (not the fit).
 *   npm run bench:adaptive -- [--threads 2] [--limit 500] [--reference-limit 2000]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runAttack } from '../src/core/attacks/run';
import { defaultCacheDir, fitDefense } from '../src/core/defenses/fit';
import { DefendedClassifier, threatClassifier } from '../src/core/defenses/threats';
import { prepareData } from '../src/core/eval/data';
import { defendedParts, onnxClassifier, openClassifier } from '../src/core/eval/model-session';
import { DEMO, ROOT, demoData, flag } from './common';

const LAYER = '/features/features.5/MaxPool_output_0';

async function main() {
  const threads = flag('threads', 2),
    limit = flag('limit', 500),
    referenceLimit = flag('reference-limit', 2000);
  const options = { ep: 'cpu' as const, threads };
  const model = await openClassifier(DEMO.model, options);
  const data = await demoData(limit);
  const reference = await prepareData({ data: DEMO.trainImages, labels: DEMO.trainLabels, limit: referenceLimit }, model);
  const fit = await fitDefense(
    { kind: 'lesci', layer: LAYER, reference: DEMO.trainImages, referenceLabels: DEMO.trainLabels, referenceLimit, lesci: { mode: 'vq' } },
    {
      loaded: model.loaded,
      graph: model.graph,
      reference: { x: reference.x, labels: reference.labels, count: reference.count, sha256: reference.description.sha256 },
      seed: 0,
      cacheDir: defaultCacheDir(DEMO.model),
      threads,
      batchSize: 100,
      log: () => {},
    },
  );
  const undefended = onnxClassifier(model, options);
  const defended = new DefendedClassifier(defendedParts(model, fit.stage, options, undefended));
  const adaptive = threatClassifier(defended, 'adaptive');
  const config = { attack: 'pgd' as const, norm: 'linf' as const, eps: 0.05, steps: 10 };
  await runAttack(adaptive, { ...data, count: Math.min(50, data.count), x: data.x.subarray(0, 50 * 784), labels: data.labels.subarray(0, 50) }, config, {
    batchSize: 100,
    seed: 0,
  }); // warm-up: builds the surrogate's sessions
  const t0 = performance.now();
  const ours = await runAttack(adaptive, data, config, { batchSize: 100, seed: 0 });
  const oursSeconds = (performance.now() - t0) / 1000;
  await adaptive.release();
  await defended.release();
  await undefended.release();
  await model.session.release();

  const out = path.join(mkdtempSync(path.join(tmpdir(), 'rlab-bench-adaptive-')), 'ref.json');
  const py = spawnSync(
    '/usr/bin/python3',
    [
      path.join(ROOT, 'scripts', 'reference_lesci_adaptive.py'),
      '--limit',
      String(limit),
      '--reference-limit',
      String(referenceLimit),
      '--threads',
      String(threads),
      '--out',
      out,
    ],
    { encoding: 'utf8', timeout: 1_800_000 },
  );
  const line = /\(b\) adaptive PGD-10 ce: robust accuracy ([\d.]+); (\d+) images in ([\d.]+) s/.exec(py.stdout ?? '');
  console.log(`Adaptive PGD-10 on LESCI vq (pool2), L∞ eps 0.05, ${data.count} demo test images, ${referenceLimit} reference images, ${threads} threads`);
  console.log(
    `  robustness-lab (onnxruntime): ${(data.count / oursSeconds).toFixed(1)} images/s (${oursSeconds.toFixed(2)} s), robust accuracy ${(100 * ours.accuracy).toFixed(1)}%`,
  );
  if (!line) {
    console.log(`  PyTorch reference: skipped (${py.error?.message ?? (py.stderr || py.stdout).trim().split('\n').pop()})`);
    return;
  }
  const theirs = Number(line[3]);
  console.log(
    `  PyTorch reference (scripts/reference_lesci_adaptive.py): ${(data.count / theirs).toFixed(1)} images/s (${theirs.toFixed(2)} s), robust accuracy ${(100 * Number(line[1])).toFixed(1)}%`,
  );
  console.log(`  ratio: ${(theirs / oursSeconds).toFixed(2)}x`);
}

void main();
