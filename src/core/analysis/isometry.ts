/**
 * Isometry per layer (isometric-representations paper, arXiv 2211.01236): how well each insertion
 * point preserves the distances between inputs. The paper trains with the metric-preservation term
 * Σ M_ij (λ2·‖z_i − z_j‖ − ‖x_i − x_j‖)² over within-class pairs (M_ij = 1 when y_i = y_j); here the
 * same quantities are measured, not trained, at every insertion point, for within-class and
 * between-class pairs separately:
 *
 *   d_x = ‖x_i − x_j‖ (flattened model input, after preprocessing), d_z = ‖z_i − z_j‖ (flattened
 *   activation at T); Pearson and Spearman correlation of d_x and d_z; the least-squares scale
 *   s = Σ d_x d_z / Σ d_x² of d_z ≈ s·d_x; and the relative distortion
 *   mean((s·d_x − d_z)²) / mean(d_z²) = 1 − (Σ d_x d_z)² / (Σ d_x² Σ d_z²),
 *   the paper's term at the best scale, divided by the activations' own spread so that layers of
 *   any size compare: 0 for an isometry up to scale, 1 when no scale helps.
 *
 * Pairs are drawn with replacement from a seeded stream (src/core/random.ts), within-class and
 * between-class from independent forks, so the same labels and seed give the same pairs.
 */
import { Rng } from '../random';
import { UserError } from '../errors';
import { checkLayer } from '../defenses/fit';
import type { ModelGraph } from '../model/graph';
import type { LoadedModel } from '../model/load';
import type { IsometryLayer, IsometryPairStats, IsometryResult } from '../../protocol/run-result';
import { DEFAULT_ISOMETRY_PAIRS, type IsometryPlan } from '../../protocol/experiment';
import { forEachLayerActivation, type LayerActivationOptions } from './layer-activations';
import { pearson, spearman } from './stats';

export interface PairSet {
  i: Int32Array;
  j: Int32Array;
}

export const PAIR_SAMPLING =
  'with replacement; within-class: i uniform over samples whose class has another sample, j uniform over the other samples of its class; between-class: i uniform, j uniform over samples of other classes (rejection sampling)';

/** Seeded within-class and between-class pairs of sample indices (i ≠ j always). */
export function samplePairs(labels: ArrayLike<number>, count: number, seed: number): { within: PairSet; between: PairSet } {
  const n = labels.length;
  const byClass = new Map<number, number[]>();
  for (let s = 0; s < n; s++) {
    const members = byClass.get(labels[s]);
    if (members) members.push(s);
    else byClass.set(labels[s], [s]);
  }
  const position = new Int32Array(n);
  for (const members of byClass.values()) members.forEach((s, p) => (position[s] = p));
  const rng = new Rng(seed).fork('isometry-pairs');

  const eligible: number[] = [];
  for (let s = 0; s < n; s++) if (byClass.get(labels[s])!.length > 1) eligible.push(s);
  const withinCount = eligible.length ? count : 0;
  const within: PairSet = { i: new Int32Array(withinCount), j: new Int32Array(withinCount) };
  const w = rng.fork('within');
  for (let k = 0; k < withinCount; k++) {
    const i = eligible[w.int(eligible.length)];
    const members = byClass.get(labels[i])!;
    const r = w.int(members.length - 1);
    within.i[k] = i;
    within.j[k] = members[r >= position[i] ? r + 1 : r];
  }

  const betweenCount = byClass.size > 1 ? count : 0;
  const between: PairSet = { i: new Int32Array(betweenCount), j: new Int32Array(betweenCount) };
  const b = rng.fork('between');
  for (let k = 0; k < betweenCount; k++) {
    const i = b.int(n);
    let j = b.int(n);
    while (labels[j] === labels[i]) j = b.int(n);
    between.i[k] = i;
    between.j[k] = j;
  }
  return { within, between };
}

/** Euclidean distances of pairs of rows of a [rows, size] array; `rowOf[sample]` is the sample's row. */
export function pairDistances(values: Float32Array, size: number, rowOf: Int32Array, pairs: PairSet): Float64Array {
  const out = new Float64Array(pairs.i.length);
  for (let k = 0; k < out.length; k++) {
    const a = rowOf[pairs.i[k]] * size;
    const b = rowOf[pairs.j[k]] * size;
    let sum = 0;
    for (let c = 0; c < size; c++) {
      const d = values[a + c] - values[b + c];
      sum += d * d;
    }
    out[k] = Math.sqrt(sum);
  }
  return out;
}

/** Correlations, best-fit scale and relative distortion of activation against input distances. */
export function isometryStats(dx: Float64Array, dz: Float64Array): IsometryPairStats {
  const n = dx.length;
  let sxz = 0,
    sxx = 0,
    szz = 0,
    mx = 0,
    mz = 0;
  for (let k = 0; k < n; k++) {
    sxz += dx[k] * dz[k];
    sxx += dx[k] * dx[k];
    szz += dz[k] * dz[k];
    mx += dx[k];
    mz += dz[k];
  }
  const scale = sxx > 0 ? sxz / sxx : null;
  // mean((s·dx − dz)²) / mean(dz²), summed directly rather than by the closed form, which cancels badly near 0.
  let residual = 0;
  if (scale !== null) for (let k = 0; k < n; k++) residual += (scale * dx[k] - dz[k]) ** 2;
  return {
    pairs: n,
    pearson: pearson(dx, dz),
    spearman: n > 1 ? spearman(dx, dz) : null,
    scale,
    distortion: scale !== null && szz > 0 ? residual / szz : null,
    meanInputDistance: n ? mx / n : 0,
    meanActivationDistance: n ? mz / n : 0,
  };
}

export interface IsometryLayerChoice {
  tensor: string;
  layer: string;
  op: string;
  depth: number;
}

/**
 * The insertion points to measure: every one (the model input excluded: it is the reference), or
 * those named in `wanted` (tensors, or the nodes that produce them), in graph order.
 */
export function isometryLayers(graph: ModelGraph, wanted?: readonly string[]): IsometryLayerChoice[] {
  const all = graph.layers
    .filter((l) => l.insertionPoint && l.outputs.length > 0)
    .map((l) => ({ tensor: l.outputs[0], layer: l.name, op: l.op, depth: l.index + 1 }));
  if (!wanted || wanted.length === 0) {
    if (all.length === 0) throw new UserError(`'${graph.path}' has no insertion point after its input to measure.`);
    return all;
  }
  const chosen = new Set<string>();
  for (const name of wanted) {
    const match = all.find((l) => l.tensor === name || l.layer === name);
    if (!match) {
      const input = graph.inputs.some((i) => i.name === name);
      if (input) throw new UserError(`--layers: '${name}' is the model input, which every layer is compared with.`, 'Name insertion points after the input.');
      // Throws, saying why the tensor (or the node's output) is not an insertion point and listing those that are.
      checkLayer(graph, graph.layers.find((l) => l.name === name)?.outputs[0] ?? name);
      throw new UserError(`--layers: '${name}' is not a layer output to measure.`);
    }
    chosen.add(match.tensor);
  }
  return all.filter((l) => chosen.has(l.tensor));
}

export interface IsometryInput {
  model: { loaded: LoadedModel; graph: ModelGraph };
  /** Model inputs [count, ...] as the model sees them, and their labels. */
  x: Float32Array;
  labels: Int32Array;
  count: number;
}

/** Measures isometry at the chosen insertion points over seeded pairs of the given samples. */
export async function measureIsometry(
  input: IsometryInput,
  plan: IsometryPlan & { seed: number },
  options: LayerActivationOptions & { onLog?(line: string): void },
): Promise<IsometryResult> {
  const t0 = performance.now();
  const pairsRequested = plan.pairs ?? DEFAULT_ISOMETRY_PAIRS;
  if (!(Number.isInteger(pairsRequested) && pairsRequested >= 1)) throw new UserError(`The number of pairs must be a whole number ≥ 1, got ${pairsRequested}.`);
  const layers = isometryLayers(input.model.graph, plan.layers);
  const pairs = samplePairs(input.labels, pairsRequested, plan.seed);
  if (pairs.within.i.length === 0 && pairs.between.i.length === 0)
    throw new UserError(
      `Isometry needs at least two samples of one class or two classes; the data has ${input.count} sample(s).`,
      'Use more samples (--limit).',
    );
  if (pairs.within.i.length === 0) options.onLog?.('Isometry: no class has two samples, so there are no within-class pairs.');
  if (pairs.between.i.length === 0) options.onLog?.('Isometry: the data holds one class only, so there are no between-class pairs.');

  // Only the samples in some pair go through the model.
  const used = [...new Set([...pairs.within.i, ...pairs.within.j, ...pairs.between.i, ...pairs.between.j])].sort((a, b) => a - b);
  const rowOf = new Int32Array(input.count).fill(-1);
  used.forEach((s, r) => (rowOf[s] = r));
  const inputSize = input.x.length / input.count;
  const x = new Float32Array(used.length * inputSize);
  used.forEach((s, r) => x.set(input.x.subarray(s * inputSize, (s + 1) * inputSize), r * inputSize));
  const dxWithin = pairDistances(x, inputSize, rowOf, pairs.within);
  const dxBetween = pairDistances(x, inputSize, rowOf, pairs.between);

  const results = new Map<string, Pick<IsometryLayer, 'size' | 'within' | 'between'>>();
  await forEachLayerActivation(
    input.model,
    layers.map((l) => l.tensor),
    x,
    used.length,
    options,
    (tensor, values, size) => {
      results.set(tensor, {
        size,
        within: isometryStats(dxWithin, pairDistances(values, size, rowOf, pairs.within)),
        between: isometryStats(dxBetween, pairDistances(values, size, rowOf, pairs.between)),
      });
    },
  );
  return {
    referenceCount: input.count,
    pairsRequested,
    seed: plan.seed,
    inputSize,
    sampling: PAIR_SAMPLING,
    layers: layers.map((l) => ({ ...l, ...results.get(l.tensor)! })),
    seconds: (performance.now() - t0) / 1000,
  };
}
