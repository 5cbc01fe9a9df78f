/**
 * Locality-sensitive hashing with random hyperplanes (SimHash, Charikar 2002) and query-directed
 * multi-probe (Lv et al. 2007), for the retrieval defense's JS fast path on large databases.
 *
 * - L tables of K bits each; bit b of a vector v is [w_b · (v − c) > 0], w_b Gaussian from the
 *   seed, c the mean of the database vectors (hyperplanes through the data's centre split it
 *   evenly; ReLU activations all lie in one orthant, where hyperplanes through the origin would
 *   put most points in a few buckets).
 * - For cosine search the vectors are normalised before hashing (close in angle ⇒ close on the
 *   unit sphere ⇒ likely on the same side of each hyperplane); for L2 they are hashed as they are.
 * - Multi-probe: besides its own bucket, a query visits in each table the `probes` buckets obtained
 *   by flipping the bit sets with the smallest Σ margin² (margins = w_b · (v − c)), generated in
 *   increasing order with the shift/expand heap of Lv et al.
 * - The union of the candidates is re-ranked exactly (the caller's distance): LSH only decides
 *   which rows are looked at, so with enough tables and probes the result equals exact search.
 */
import { Rng } from '../random';
import { cosineNorm, type Distance } from './knn';

export interface LshOptions {
  /** L, number of hash tables. Default 8. */
  tables?: number;
  /** K, bits per table. Default: round(log2(n / 8)) clamped to [4, 24] (≈ 8 rows per bucket). */
  bits?: number;
  /** Extra buckets probed per table (multi-probe). Default 8. */
  probes?: number;
}

export const LSH_DEFAULTS = { tables: 8, probes: 8 } as const;

export function defaultBits(n: number): number {
  return Math.min(24, Math.max(4, Math.round(Math.log2(Math.max(n, 1) / 8))));
}

export class LshIndex {
  readonly tables: number;
  readonly bits: number;
  readonly probes: number;
  /** [L·K, dims] hyperplane normals. */
  private readonly planes: Float64Array;
  private readonly centre: Float64Array;
  private readonly buckets: Map<number, number[]>[];

  /** Indexes the n rows (dims values each) of `vectors`. */
  constructor(
    vectors: ArrayLike<number>,
    readonly n: number,
    readonly dims: number,
    readonly distance: Distance,
    options: LshOptions = {},
    seed = 0,
  ) {
    this.tables = options.tables ?? LSH_DEFAULTS.tables;
    this.bits = options.bits ?? defaultBits(n);
    this.probes = options.probes ?? LSH_DEFAULTS.probes;
    if (!(this.tables >= 1 && this.bits >= 1 && this.bits <= 30 && this.probes >= 0)) throw new RangeError('LSH: tables ≥ 1, 1 ≤ bits ≤ 30, probes ≥ 0');
    const rng = new Rng(seed).fork('lsh-hyperplanes');
    this.planes = rng.normals(new Float64Array(this.tables * this.bits * dims));
    this.centre = new Float64Array(dims);
    const v = new Float64Array(dims);
    for (let i = 0; i < n; i++) {
      this.prepare(vectors, i * dims, v);
      for (let j = 0; j < dims; j++) this.centre[j] += v[j];
    }
    for (let j = 0; j < dims; j++) this.centre[j] /= Math.max(n, 1);
    this.buckets = Array.from({ length: this.tables }, () => new Map<number, number[]>());
    const margins = new Float64Array(this.bits);
    for (let i = 0; i < n; i++) {
      this.prepare(vectors, i * dims, v);
      for (let t = 0; t < this.tables; t++) {
        const key = this.hash(v, t, margins);
        const b = this.buckets[t].get(key);
        if (b) b.push(i);
        else this.buckets[t].set(key, [i]);
      }
    }
  }

  /** The vector as hashed (normalised for cosine); `hash` subtracts the centre. */
  private prepare(x: ArrayLike<number>, offset: number, out: Float64Array): void {
    const d = this.dims;
    let scale = 1;
    if (this.distance === 'cosine') {
      let s = 0;
      for (let j = 0; j < d; j++) s += x[offset + j] * x[offset + j];
      scale = 1 / cosineNorm(s);
    }
    for (let j = 0; j < d; j++) out[j] = x[offset + j] * scale;
  }

  private hash(v: Float64Array, table: number, margins: Float64Array): number {
    const d = this.dims;
    let key = 0;
    for (let b = 0; b < this.bits; b++) {
      const o = (table * this.bits + b) * d;
      let s = 0;
      for (let j = 0; j < d; j++) s += this.planes[o + j] * (v[j] - this.centre[j]);
      margins[b] = s;
      if (s > 0) key |= 1 << b;
    }
    return key >>> 0;
  }

  /** Candidate rows for a query vector (dims values at `offset`), each once, ascending. */
  candidates(query: ArrayLike<number>, offset = 0, probes = this.probes): Int32Array {
    const v = new Float64Array(this.dims);
    this.prepare(query, offset, v);
    const margins = new Float64Array(this.bits);
    const seen = new Set<number>();
    for (let t = 0; t < this.tables; t++) {
      const key = this.hash(v, t, margins);
      for (const probe of probeKeys(key, margins, probes)) {
        const b = this.buckets[t].get(probe);
        if (b) for (const i of b) seen.add(i);
      }
    }
    return Int32Array.from(seen).sort();
  }

  /** Bucket-size statistics (for reports). */
  stats(): { meanBucket: number; maxBucket: number; buckets: number } {
    let count = 0;
    let max = 0;
    let total = 0;
    for (const m of this.buckets) {
      for (const b of m.values()) {
        count++;
        total += b.length;
        max = Math.max(max, b.length);
      }
    }
    return { meanBucket: total / Math.max(count, 1), maxBucket: max, buckets: count };
  }
}

/**
 * The query's own bucket, then `probes` perturbed buckets in increasing Σ margin² of the flipped
 * bits (shift/expand generation over the bits sorted by |margin|).
 */
export function probeKeys(key: number, margins: Float64Array, probes: number): number[] {
  const keys = [key];
  const k = margins.length;
  if (probes <= 0 || k === 0) return keys;
  const order = Array.from({ length: k }, (_, b) => b).sort((a, b) => Math.abs(margins[a]) - Math.abs(margins[b]) || a - b);
  const z = order.map((b) => margins[b] * margins[b]);
  // Min-heap of [score, positions] (positions into `order`, ascending).
  const heap: { score: number; set: number[] }[] = [{ score: z[0], set: [0] }];
  const push = (e: { score: number; set: number[] }) => {
    heap.push(e);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p].score <= heap[i].score) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const pop = () => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && heap[l].score < heap[m].score) m = l;
        if (r < heap.length && heap[r].score < heap[m].score) m = r;
        if (m === i) break;
        [heap[m], heap[i]] = [heap[i], heap[m]];
        i = m;
      }
    }
    return top;
  };
  while (keys.length <= probes && heap.length) {
    const { score, set } = pop();
    let flipped = key;
    for (const p of set) flipped ^= 1 << order[p];
    keys.push(flipped >>> 0);
    const last = set[set.length - 1];
    if (last + 1 < k) {
      push({ score: score - z[last] + z[last + 1], set: [...set.slice(0, -1), last + 1] }); // shift
      push({ score: score + z[last + 1], set: [...set, last + 1] }); // expand
    }
  }
  return keys;
}
