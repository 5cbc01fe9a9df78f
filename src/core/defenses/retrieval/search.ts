/**
 * The retrieval database and its search: a seeded random projection h' = W·h, exact search
 * (brute force) or LSH candidates re-ranked exactly in the same space (as the ONNX graph does
 * with --search exact and --search lsh).
 */
import { UserError } from '../../errors';
import { Rng } from '../../random';
import type { ReferenceActivations } from '../activations';
import { knnSearch, pairDistance } from '../knn';
import { LshIndex } from '../lsh';
import { RETRIEVAL_DEFAULTS, type RetrievalIndex, type RetrievalOptions, type SearchOptions } from './types';

function resolveScale(scale: RetrievalOptions['attentionScale'], D: number): number {
  const s = scale ?? RETRIEVAL_DEFAULTS.attentionScale;
  if (s === 'inv-sqrt-d') return 1 / Math.sqrt(D);
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0)
    throw new UserError(`Retrieval attention scale must be 'inv-sqrt-d' or a non-negative number, got ${String(s)}.`);
  return s;
}

/** The retrieval database and search structures for a reference set (deterministic in the seed). */
export function buildRetrievalIndex(ref: ReferenceActivations, options: Omit<RetrievalOptions, 'head'> = {}): RetrievalIndex {
  const neighbours = options.neighbours ?? RETRIEVAL_DEFAULTS.neighbours;
  const distance = options.distance ?? RETRIEVAL_DEFAULTS.distance;
  const seed = options.seed ?? RETRIEVAL_DEFAULTS.seed;
  const D = ref.size;
  const p = Math.min(options.projectionDims ?? RETRIEVAL_DEFAULTS.projectionDims, D);
  if (!Number.isInteger(neighbours) || neighbours < 1 || neighbours >= ref.n) {
    throw new UserError(`Retrieval needs 1 ≤ N < ${ref.n} (the database size) neighbours; got ${neighbours}.`);
  }
  if (!Number.isInteger(p) || p < 0) throw new UserError(`Retrieval projection dimension must be a non-negative integer; got ${p}.`);
  if (distance !== 'cosine' && distance !== 'l2') throw new UserError(`Retrieval distance must be 'cosine' or 'l2', got '${String(distance)}'.`);
  let projection: Float32Array | undefined;
  let keys = ref.activations;
  if (p > 0) {
    const w = new Rng(seed).fork('retrieval-projection').normals(new Float32Array(p * D), 0, 1 / Math.sqrt(p));
    projection = w;
    keys = projectRows(ref.activations, ref.n, D, w, p);
  }
  const keyDims = p > 0 ? p : D;
  return {
    n: ref.n,
    size: D,
    dims: ref.dims,
    numClasses: ref.numClasses,
    neighbours,
    distance,
    scale: resolveScale(options.attentionScale, D),
    database: ref.activations,
    labels: ref.labels,
    projectionDims: p,
    projection,
    keys,
    keyDims,
    lsh: new LshIndex(keys, ref.n, keyDims, distance, options.lsh, seed),
  };
}

/** Rows · Wᵀ in float64, stored float32 (W is [p, D]). */
export function projectRows(x: ArrayLike<number>, n: number, D: number, w: Float32Array, p: number): Float32Array {
  const out = new Float32Array(n * p);
  for (let i = 0; i < n; i++) {
    const xo = i * D;
    for (let c = 0; c < p; c++) {
      let s = 0;
      const wo = c * D;
      for (let j = 0; j < D; j++) s += x[xo + j] * w[wo + j];
      out[i * p + c] = s;
    }
  }
  return out;
}

/**
 * The N nearest database rows of `count` activations h (flat [count, D]) in the search space.
 * [count, N] indices, nearest first. LSH: the Hamming-ball candidates of every table (the graph's
 * search, lsh.ts), re-ranked exactly; queries with fewer than N candidates fall back to exact
 * search (reported in `fallbacks`), as in the graph.
 */
export function retrievalSearch(
  index: RetrievalIndex,
  h: ArrayLike<number>,
  count: number,
  options: SearchOptions = {},
): { indices: Int32Array; fallbacks: number; meanCandidates: number } {
  const N = index.neighbours;
  const q = index.projection ? projectRows(h, count, index.size, index.projection, index.projectionDims) : h instanceof Float32Array ? h : Float32Array.from(h);
  const d = index.keyDims;
  if ((options.method ?? 'lsh') === 'exact') {
    return { indices: knnSearch(q, count, index.keys, index.n, d, N, index.distance, options.exclude).indices, fallbacks: 0, meanCandidates: index.n };
  }
  const indices = new Int32Array(count * N);
  let fallbacks = 0;
  let totalCandidates = 0;
  for (let a = 0; a < count; a++) {
    const skip = options.exclude ? options.exclude(a) : -1;
    const cand = index.lsh.candidatesWithin(q, a * d, options.radius);
    totalCandidates += cand.length;
    const usable = skip >= 0 && cand.includes(skip) ? cand.length - 1 : cand.length;
    if (usable < N) {
      fallbacks++;
      const one = knnSearch(q.subarray(a * d, (a + 1) * d), 1, index.keys, index.n, d, N, index.distance, skip >= 0 ? () => skip : undefined);
      indices.set(one.indices, a * N);
      continue;
    }
    // Exact re-ranking of the candidates (ties: lower index first, as in the graph).
    const scored: { i: number; dist: number }[] = [];
    for (const i of cand) if (i !== skip) scored.push({ i, dist: pairDistance(q, a * d, index.keys, i * d, d, index.distance) });
    scored.sort((x, y) => x.dist - y.dist || x.i - y.i);
    for (let m = 0; m < N; m++) indices[a * N + m] = scored[m].i;
  }
  return { indices, fallbacks, meanCandidates: totalCandidates / Math.max(count, 1) };
}
