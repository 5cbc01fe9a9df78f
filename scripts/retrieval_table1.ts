/**
 * The retrieval paper's Table 1 shape on the demo model, with the paper's configuration: the
 * retrieval defense at fc1 with LSH search inside the evaluated model, the learned attention
 * matrix U and the paper head, N = 5 and 10; FGSM and iterative FGSM (BIM) at L∞ eps 0.01–0.08,
 * under the transfer, direct and adaptive threat models (the adaptive one with its own-data
 * variant), with the per-sample worst case. Also the same N = 10 defense with exact search (clean
 * accuracy only), for the clean-accuracy difference LSH makes in the evaluated model.
 * Writes docs/evidence-retrieval.md.
 *
 *   node --import tsx scripts/retrieval_table1.ts [--limit 300] [--reference-limit 5000] [--threads 2] [--from-results]
 * --from-results rewrites the document from the last run's results (.rlab-cache/evidence-retrieval/table1-results.json).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runEvaluation } from '../src/core/eval/evaluate';
import type { LshCheck } from '../src/core/defenses/retrieval';
import type { DefensePlan, EvaluationConfig } from '../src/protocol/experiment';
import type { AttackResult, RunResult } from '../src/protocol/run-result';

const ROOT = path.resolve(__dirname, '..');
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const limit = arg('limit', 300);
const referenceLimit = arg('reference-limit', 5000);
const threads = arg('threads', 2);
const EPS = [0.01, 0.02, 0.04, 0.06, 0.08];
const FC1 = '/classifier/classifier.2/Relu_output_0';
const THREATS = ['transfer', 'direct', 'adaptive'] as const;
const COMMAND = `node --import tsx scripts/retrieval_table1.ts --limit ${limit} --reference-limit ${referenceLimit} --threads ${threads}`;

const base: EvaluationConfig = {
  model: path.join(ROOT, 'demo/fashion-cnn.onnx'),
  data: path.join(ROOT, 'demo/data/t10k-images-idx3-ubyte.gz'),
  labels: path.join(ROOT, 'demo/data/t10k-labels-idx1-ubyte.gz'),
  limit,
  batchSize: 100,
  threads,
  ep: 'cpu',
  seed: 0,
  cacheDir: path.join(ROOT, '.rlab-cache', 'evidence-retrieval'),
};
const plan = (neighbours: number, search: 'exact' | 'lsh', threats: DefensePlan['threats'] = [...THREATS]): DefensePlan => ({
  kind: 'retrieval',
  layer: FC1,
  reference: path.join(ROOT, 'demo/data/train-images-idx3-ubyte.gz'),
  referenceLabels: path.join(ROOT, 'demo/data/train-labels-idx1-ubyte.gz'),
  referenceLimit,
  threats,
  retrieval: { head: 'paper', neighbours, search, attention: 'learned' },
});
const attacks = { names: ['fgsm', 'bim'], eps: EPS, norm: 'linf' as const, steps: 10 };
const pct = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${(100 * x).toFixed(1)}`);
const find = (r: RunResult, target: string, attack: string, threat: string, eps: number): AttackResult | undefined =>
  r.attacks?.find((a) => a.target === target && a.attack === attack && a.threat === threat && a.eps === eps);

async function run(label: string, config: EvaluationConfig): Promise<{ result: RunResult; seconds: number }> {
  const t0 = performance.now();
  const result = await runEvaluation(config, { onLog: (line) => (line.startsWith('retrieval ') ? console.error(`  ${line}`) : undefined) });
  const seconds = (performance.now() - t0) / 1000;
  console.error(`${label}: ${seconds.toFixed(0)} s`);
  return { result, seconds };
}

/** One table per N: rows eps, columns FGSM and I-FGSM for the undefended model, each threat and the worst case. */
function table(r: RunResult): string {
  const d = r.defense!;
  const threats = [...THREATS, 'adaptive/own-data'].filter((t) => r.attacks?.some((a) => a.target === 'defended' && a.threat === t));
  const cols = ['undefended', ...threats];
  const head = `| eps | ${['FGSM', 'I-FGSM'].flatMap((a) => cols.map((c) => `${a} ${c}`)).join(' | ')} | worst case undefended | worst case defended |`;
  const lines = [head, `|${'---|'.repeat(2 * cols.length + 3)}`];
  lines.push(
    `| 0 (clean) | ${pct(d.clean.baselineAccuracy)} | ${threats.map(() => pct(d.clean.accuracy)).join(' | ')} | | ${threats.map(() => '').join(' | ')} | ${pct(d.clean.baselineAccuracy)} | ${pct(d.clean.accuracy)} |`,
  );
  for (const eps of EPS) {
    const cells = ['fgsm', 'bim'].flatMap((attack) => [
      pct(find(r, 'baseline', attack, 'whitebox', eps)?.accuracy),
      ...threats.map((t) => pct(find(r, 'defended', attack, t, eps)?.accuracy)),
    ]);
    const wb = r.worstCase?.find((w) => w.eps === eps);
    const wd = d.worstCase.find((w) => w.eps === eps);
    lines.push(`| ${eps} | ${cells.join(' | ')} | ${pct(wb?.accuracy)} | ${pct(wd?.accuracy)} (${wd?.attack}, ${wd?.threat}) |`);
  }
  return lines.join('\n');
}

/** The paper's Table 1 beside ours (worst case over our threats) in one compact table. */
function comparison(rows: { N: number; r: RunResult }[]): string {
  const paper: Record<string, number[]> = {
    clean: [95.27, 90.48, 91.91, 95.27, 90.48, 91.91],
    '0.01': [75.05, 80.53, 82.58, 69.42, 77.25, 80.3],
    '0.02': [54.55, 72.17, 71.83, 37.13, 63.46, 64.97],
    '0.04': [31.92, 57.33, 53.98, 8.3, 44.28, 40.37],
    '0.06': [22.22, 45.33, 40.81, 1.77, 33.08, 26.34],
    '0.08': [17.24, 35.99, 31.7, 0.35, 26.41, 18.4],
  };
  const lines = [
    '| eps | paper FGSM baseline / N=5 / N=10 | ours FGSM undefended / N=5 / N=10 (weakest threat → strongest) | paper I-FGSM baseline / N=5 / N=10 | ours I-FGSM undefended / N=5 / N=10 (weakest threat → strongest) |',
    '|---|---|---|---|---|',
  ];
  const r5 = rows.find((x) => x.N === 5)!.r;
  const range = (r: RunResult, attack: string, eps: number) => {
    const vals = [...THREATS, 'adaptive/own-data'].map((t) => find(r, 'defended', attack, t, eps)?.accuracy).filter((v): v is number => v !== undefined);
    return `${pct(Math.max(...vals))} → ${pct(Math.min(...vals))}`;
  };
  lines.push(
    `| 0 (clean) | ${paper.clean.slice(0, 3).join(' / ')} | ${pct(r5.clean.accuracy)} / ${rows.map((x) => pct(x.r.defense!.clean.accuracy)).join(' / ')} | ${paper.clean.slice(3).join(' / ')} | same |`,
  );
  for (const eps of EPS) {
    const p = paper[String(eps)];
    const ours = (attack: string) =>
      `${pct(find(r5, 'baseline', attack, 'whitebox', eps)?.accuracy)} / ${rows.map((x) => range(x.r, attack, eps)).join(' / ')}`;
    lines.push(`| ${eps} | ${p.slice(0, 3).join(' / ')} | ${ours('fgsm')} | ${p.slice(3).join(' / ')} | ${ours('bim')} |`);
  }
  return lines.join('\n');
}

async function main() {
  const started = new Date();
  const saved = path.join(base.cacheDir!, 'table1-results.json');
  let rows: { N: number; r: RunResult; seconds: number }[] = [];
  let exact: { result: RunResult; seconds: number };
  if (process.argv.includes('--from-results')) {
    // Rewrites the document from the last run's results (no evaluation).
    ({ rows, exact } = JSON.parse(readFileSync(saved, 'utf8')) as { rows: typeof rows; exact: typeof exact });
  } else {
    for (const N of [5, 10]) {
      const { result, seconds } = await run(`retrieval N=${N} (paper head, learned U, LSH)`, { ...base, attacks, defense: plan(N, 'lsh') });
      rows.push({ N, r: result, seconds });
    }
    // The same N = 10 defense with exact search: its clean accuracy, for the difference LSH makes.
    exact = await run('retrieval N=10 exact search (clean accuracy)', {
      ...base,
      attacks: { names: ['fgsm'], eps: [0.01], norm: 'linf' },
      defense: plan(10, 'exact', ['transfer']),
    });
    mkdirSync(base.cacheDir!, { recursive: true });
    writeFileSync(saved, JSON.stringify({ rows, exact }));
  }
  const exactClean = exact.result.defense!.clean.accuracy;
  const lsh10 = rows.find((x) => x.N === 10)!.r.defense!;
  const checks = rows.map(({ N, r }) => {
    const c = r.defense!.params.lshCheck as LshCheck;
    const p = r.defense!.params as { lsh: { tables: number; bits: number; radius: number }; databaseSize: number };
    return `| ${N} | ${p.lsh.tables} × ${p.lsh.bits} bits, radius ${p.lsh.radius} | ${c.recall.toFixed(3)} | ${pct(c.candidateFraction)} | ${c.fallbacks} | ${pct(c.accuracyExact)} | ${pct(c.accuracyLsh)} | ${(100 * c.accuracyDifference).toFixed(1)} |`;
  });
  const fits = [...rows.map((x) => x.r), exact.result].map((r) => r.defense!);
  const cachedNote = fits.some((d) => d.cached)
    ? `, the defense fits reused from the cache; fitting them took ${fits.reduce((a, d) => a + d.fitSeconds, 0).toFixed(0)} s more`
    : '';
  const minutes = (rows.reduce((s, x) => s + x.seconds, 0) + exact.seconds) / 60;
  const ref = rows[0].r.defense!.reference;
  const md = `# Retrieval defense: the paper's Table 1 shape, as the paper specifies the defense

Generated by \`scripts/retrieval_table1.ts\` on ${started.toISOString().slice(0, 10)} (${minutes.toFixed(1)} minutes on ${threads} threads${cachedNote}):

\`\`\`sh
${COMMAND}
\`\`\`

**Setup.** The demo Fashion-MNIST CNN (\`demo/fashion-cnn.onnx\`), the first ${limit} test images; the retrieval
defense at fc1 (\`${FC1}\`, D = ${(lsh10.params.activationDims as number[]).join('×')}) with the paper's configuration:
a private database of the first ${ref.count} training images' activations, a seeded Gaussian projection to
${String(lsh10.params.projectionDims)} dimensions, **LSH search inside the evaluated model** (the defended ONNX model that is attacked
and exported: L tables of K sign bits, Hamming-radius multi-probe, exact distances among the candidates), attention
β_n = s·hᵀ U h_n with **U learnt** jointly with the **paper head** (dense layers on [h̄; ȳ]) on the reference set,
each sample left out of its own retrieval; N = 5 and 10. Attacks: FGSM and iterative FGSM (BIM, 10 steps of
2.5·eps/10, projected onto the eps-ball) at L∞ eps 0.01–0.08 on [0,1] pixels. Threat models: \`transfer\` (the
undefended model's gradient), \`direct\` (the defended model's own gradient, which is zero through the search and
flows through the attention and the head), \`adaptive\` (a soft nearest-neighbour surrogate over the stored keys,
the private database known) and \`adaptive/own-data\` (the same over keys the attacker computes from its own data).
The worst case is the per-sample union over every attack and threat model at each eps, with the strongest single
attack in brackets. Accuracy in %.

## N = 5

${table(rows[0].r)}

Verdict: ${rows[0].r.defense!.verdict}. ${(rows[0].r.defense!.verdictReasons ?? []).join(' ')}

## N = 10

${table(rows[1].r)}

Verdict: ${rows[1].r.defense!.verdict}. ${(rows[1].r.defense!.verdictReasons ?? []).join(' ')}

## Against the paper's Table 1

The paper's numbers are on SVHN (its baseline 95.27% clean), ours on the Fashion-MNIST demo; compare shapes, not
values. For the defended model we give the range over our threat models, from the weakest to the strongest.

${comparison(rows)}

## LSH against exact search

Measured at fit time on ${(rows[0].r.defense!.params.lshCheck as LshCheck).queries} leave-one-out queries from the reference set (params.lshCheck): recall@N of the
LSH neighbours against the exact ones, the share of the database each query looks at, the queries with fewer than N
candidates (searched exactly), and the accuracy of the trained paper head on the same queries with either search.

| N | LSH | recall@N | rows looked at (%) | exact fallbacks | accuracy exact | accuracy LSH | difference (points) |
|---|---|---|---|---|---|---|---|
${checks.join('\n')}

In the evaluated model (N = 10, the test images): clean accuracy ${pct(lsh10.clean.accuracy)} with LSH search against ${pct(exactClean)}
with exact search (fitted separately: that defense's U and head are trained on its own exact leave-one-out
retrieval), a difference of ${(100 * (lsh10.clean.accuracy - exactClean)).toFixed(1)} points.

## What it shows

${interpretation(rows, exactClean)}
`;
  mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
  writeFileSync(path.join(ROOT, 'docs/evidence-retrieval.md'), md);
  console.error('Wrote docs/evidence-retrieval.md');
}

/** A plain reading of the numbers against the paper's claims, computed from the numbers. */
function interpretation(rows: { N: number; r: RunResult }[], exactClean: number): string {
  const pts = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}`;
  const acc = (r: RunResult, target: string, attack: string, threat: string, eps: number) => find(r, target, attack, threat, eps)?.accuracy ?? NaN;
  const out: string[] = [];
  const clean = rows.map(({ N, r }) => `N = ${N}: ${pts(r.defense!.clean.accuracy - r.defense!.clean.baselineAccuracy)} points`).join(', ');
  out.push(
    `- **Clean accuracy.** The paper's first observation, a clean-accuracy loss that shrinks from N = 5 to N = 10, holds: ${clean} against the undefended ${pct(rows[0].r.defense!.clean.baselineAccuracy)}%.`,
  );
  const paperGains: Record<string, string> = {
    fgsm: 'N = 5: +5.5 / +17.6 / +25.4 / +23.1 / +18.8; N = 10: +7.5 / +17.3 / +22.1 / +18.6 / +14.5',
    bim: 'N = 5: +7.8 / +26.3 / +36.0 / +31.3 / +26.1; N = 10: +10.9 / +27.8 / +32.1 / +24.6 / +18.1',
  };
  for (const attack of ['fgsm', 'bim']) {
    const name = attack === 'fgsm' ? 'FGSM' : 'I-FGSM';
    const gain = (r: RunResult, eps: number) => acc(r, 'defended', attack, 'direct', eps) - acc(r, 'baseline', attack, 'whitebox', eps);
    const gains = rows.map(({ N, r }) => `N = ${N}: ${EPS.map((eps) => pts(gain(r, eps))).join(' / ')}`);
    const large = EPS.filter((e) => e >= 0.04);
    const n5 = rows.find((x) => x.N === 5)!.r;
    const n10 = rows.find((x) => x.N === 10)!.r;
    const smallerN = large.every((eps) => gain(n5, eps) >= gain(n10, eps));
    out.push(
      `- **${name}, white-box as the paper ran it** (\`direct\`: the defended model's own gradient with the retrieved set held fixed, the only gradient the paper's model has). Points over the undefended model at eps ${EPS.join(' / ')}: ${gains.join('; ')}; the paper's: ${paperGains[attack]}. ${smallerN ? 'As in the paper, N = 5 gains at least as much as N = 10 from eps 0.04 on.' : 'Unlike the paper, N = 5 does not gain more than N = 10 at every eps from 0.04 on.'}`,
    );
  }
  const worst = rows.map(({ N, r }) => {
    const d = r.defense!;
    const diffs = EPS.map((eps) => (d.worstCase.find((w) => w.eps === eps)?.accuracy ?? NaN) - (r.worstCase?.find((w) => w.eps === eps)?.accuracy ?? NaN));
    const by = EPS.map((eps) => {
      const w = d.worstCase.find((x) => x.eps === eps);
      return `${w?.attack}/${w?.threat}`;
    });
    return `N = ${N}: ${diffs.map(pts).join(' / ')} (strongest single attack: ${by.join(', ')}; verdict ${d.verdict})`;
  });
  const n5 = rows.find((x) => x.N === 5)!.r;
  const single = (['transfer', 'adaptive', 'adaptive/own-data'] as const).map((t) => `${t} ${pct(acc(n5, 'defended', 'bim', t, 0.04))}`).join(', ');
  out.push(
    `- **Against an attacker who does not follow the defended model's own gradient**, the gain is gone. The per-sample worst case over all attacks and threats, in points over the undefended model's worst case at eps ${EPS.join(' / ')}: ${worst.join('; ')}. No single threat takes all of it (I-FGSM at eps 0.04, N = 5: ${single}, direct ${pct(acc(n5, 'defended', 'bim', 'direct', 0.04))}, against the undefended ${pct(acc(n5, 'baseline', 'bim', 'whitebox', 0.04))}): different samples fall to the undefended model's gradient and to the surrogate, and their union per sample leaves no more than the undefended model keeps (the defended model faces four threats × two attacks, the undefended one two attacks, so part of a negative difference is the larger union). The direct attack's higher numbers measure how badly the gradient of the attention and head (zero through the search) points, not robustness.`,
  );
  out.push(
    `- **LSH.** The paper's engine costs nothing measurable here: recall@N ≥ ${Math.min(...rows.map(({ r }) => (r.defense!.params.lshCheck as LshCheck).recall)).toFixed(3)} against exact search, and at N = 10 the evaluated model's clean accuracy is ${pct(rows[1].r.defense!.clean.accuracy)}% with LSH and ${pct(exactClean)}% with exact search. The hash is piecewise constant, so LSH adds no gradient obfuscation beyond the exact search's (both give zero gradient through the indices).`,
  );
  return out.join('\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
