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
 * - Hamming-ball multi-probe (`candidatesWithin`, the retrieval defense's search): in every table the
 *   buckets whose code lies within Hamming distance r of the query's code. `addLshCandidateMask`
 *   builds the same search as ONNX ops (sign bits of a projection, ±1 codes, one MatMul per table
 *   gives K − 2·Hamming), so that it runs inside a defended model and exports.
 *
 * The hyperplanes and the centre are float32 values (held in float64), so the graph, which stores
 * them as float32 initializers, hashes with the same numbers as JS.
 */
import type { GraphBuilder } from '../onnx/builder';
import { Rng } from '../random';
import { COSINE_EPS, cosineNorm, type Distance } from './knn';

export interface LshOptions {
  /** L, number of hash tables. Default 8. */
  tables?: number;
  /** K, bits per table. Default: round(log2(n / 8)) clamped to [4, 24] (≈ 8 rows per bucket). */
  bits?: number;
  /** Extra buckets probed per table (query-directed multi-probe, `candidates`). Default 8. */
  probes?: number;
  /** Hamming radius of the Hamming-ball multi-probe (`candidatesWithin`, the graph). Default 1. */
  radius?: number;
}

export const LSH_DEFAULTS = { tables: 8, probes: 8, radius: 1 } as const;

export function defaultBits(n: number): number {
  return Math.min(24, Math.max(4, Math.round(Math.log2(Math.max(n, 1) / 8))));
}

export class LshIndex {
  readonly tables: number;
  readonly bits: number;
  readonly probes: number;
  readonly radius: number;
  /** [L·K, dims] hyperplane normals (float32 values). */
  private readonly planes: Float64Array;
  /** The centre c (float32 values). */
  private readonly centre: Float64Array;
  private readonly buckets: Map<number, number[]>[];
  /** [L, n] the code of every row in every table. */
  readonly rowCodes: Uint32Array;

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
    this.radius = options.radius ?? LSH_DEFAULTS.radius;
    if (!(this.tables >= 1 && this.bits >= 1 && this.bits <= 30 && this.probes >= 0 && Number.isInteger(this.radius) && this.radius >= 0))
      throw new RangeError('LSH: tables ≥ 1, 1 ≤ bits ≤ 30, probes ≥ 0, radius a non-negative integer');
    const rng = new Rng(seed).fork('lsh-hyperplanes');
    this.planes = rng.normals(new Float64Array(this.tables * this.bits * dims)).map(Math.fround);
    this.centre = new Float64Array(dims);
    const v = new Float64Array(dims);
    for (let i = 0; i < n; i++) {
      this.prepare(vectors, i * dims, v);
      for (let j = 0; j < dims; j++) this.centre[j] += v[j];
    }
    for (let j = 0; j < dims; j++) this.centre[j] = Math.fround(this.centre[j] / Math.max(n, 1));
    this.buckets = Array.from({ length: this.tables }, () => new Map<number, number[]>());
    this.rowCodes = new Uint32Array(this.tables * n);
    const margins = new Float64Array(this.bits);
    for (let i = 0; i < n; i++) {
      this.prepare(vectors, i * dims, v);
      for (let t = 0; t < this.tables; t++) {
        const key = this.hash(v, t, margins);
        this.rowCodes[t * n + i] = key;
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

  /** The query's code in every table, and the smallest |margin| of its bits (how close it is to a hyperplane). */
  queryCodes(query: ArrayLike<number>, offset = 0): { codes: Uint32Array; minMargin: number } {
    const v = new Float64Array(this.dims);
    this.prepare(query, offset, v);
    const margins = new Float64Array(this.bits);
    const codes = new Uint32Array(this.tables);
    let minMargin = Infinity;
    for (let t = 0; t < this.tables; t++) {
      codes[t] = this.hash(v, t, margins);
      for (const m of margins) minMargin = Math.min(minMargin, Math.abs(m));
    }
    return { codes, minMargin };
  }

  /**
   * Candidate rows by Hamming-ball multi-probe: the rows of every bucket whose code lies within
   * Hamming distance `radius` of the query's code, in any table (each row once, ascending).
   */
  candidatesWithin(query: ArrayLike<number>, offset = 0, radius = this.radius): Int32Array {
    const { codes } = this.queryCodes(query, offset);
    const probes = hammingBall(this.bits, radius);
    const seen = new Set<number>();
    for (let t = 0; t < this.tables; t++) {
      for (const flip of probes) {
        const b = this.buckets[t].get((codes[t] ^ flip) >>> 0);
        if (b) for (const i of b) seen.add(i);
      }
    }
    return Int32Array.from(seen).sort();
  }

  /**
   * The index as float32 tensors for the graph: the hyperplanes as a [dims, L·K] matrix (column
   * t·K + b is plane b of table t), the centre [dims], and the rows' codes as ±1 values [L, K, n]
   * (bit b of row i in table t: +1 when set).
   */
  graphTensors(): { planesT: Float32Array; centre: Float32Array; codes: Float32Array } {
    const d = this.dims;
    const LK = this.tables * this.bits;
    const planesT = new Float32Array(d * LK);
    for (let c = 0; c < LK; c++) for (let j = 0; j < d; j++) planesT[j * LK + c] = this.planes[c * d + j];
    const codes = new Float32Array(LK * this.n);
    for (let t = 0; t < this.tables; t++)
      for (let b = 0; b < this.bits; b++)
        for (let i = 0; i < this.n; i++) codes[(t * this.bits + b) * this.n + i] = (this.rowCodes[t * this.n + i] >>> b) & 1 ? 1 : -1;
    return { planesT, centre: Float32Array.from(this.centre), codes };
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

/** Every XOR mask of `bits` bits with at most `radius` bits set (0 first). */
export function hammingBall(bits: number, radius: number): number[] {
  const out = [0];
  const extend = (mask: number, from: number, left: number) => {
    for (let b = from; b < bits; b++) {
      const m = (mask | (1 << b)) >>> 0;
      out.push(m);
      if (left > 1) extend(m, b + 1, left - 1);
    }
  };
  if (radius > 0) extend(0, 0, radius);
  return out;
}

/**
 * The Hamming-ball LSH candidates as ONNX ops: a bool mask [B, n] over the index's rows, true
 * where a row's code in some table lies within Hamming distance `radius` of the query's code
 * (the query's rows float [B, dims], prepared as the index prepares them: normalised for cosine).
 * bits = [(v − c)·W > 0] as ±1 values; per table their dot product with a row's ±1 code is
 * K − 2·Hamming, so one batched MatMul ([L, B, K] × [L, K, n]) scores every table. A query with
 * fewer than `minCandidates` candidates keeps every row (the JS search falls back to exact search
 * there too). All of it is piecewise constant: no gradient flows through the mask.
 */
export function addLshCandidateMask(g: GraphBuilder, query: string, index: LshIndex, minCandidates: number, radius = index.radius): string {
  const { planesT, centre, codes } = index.graphTensors();
  const L = index.tables;
  const K = index.bits;
  let v = query;
  if (index.distance === 'cosine') {
    const sq = g.op('ReduceSum', [g.op('Mul', [query, query]), g.int64Const('lsh_axes', [1])], { keepdims: 1 });
    v = g.op('Div', [query, g.op('Sqrt', [g.op('Add', [sq, g.scalar(COSINE_EPS * COSINE_EPS, 'lsh_eps2')])])]);
  }
  const margins = g.op('MatMul', [
    g.op('Sub', [v, g.floatConst('lsh_centre', [index.dims], centre)]),
    g.floatConst('lsh_planes_t', [index.dims, L * K], planesT),
  ]);
  const bits = g.op('Cast', [g.op('Greater', [margins, g.scalar(0, 'lsh_zero')])], { to: 1 }); // [B, L·K] 0/1
  const pm = g.op('Sub', [g.op('Mul', [bits, g.scalar(2, 'lsh_two')]), g.scalar(1, 'lsh_one')]); // ±1
  const perTable = g.op('Transpose', [g.op('Reshape', [pm, g.int64Const('lsh_shape', [-1, L, K])])], { perm: [1, 0, 2] }); // [L, B, K]
  const agree = g.op('MatMul', [perTable, g.floatConst('lsh_codes', [L, K, index.n], codes)]); // [L, B, n] = K − 2·Hamming
  const near = g.op('Cast', [g.op('GreaterOrEqual', [agree, g.scalar(K - 2 * radius - 0.5, 'lsh_threshold')])], { to: 1 });
  const hits = g.op('ReduceSum', [near, g.int64Const('lsh_table_axis', [0])], { keepdims: 0 }); // [B, n]
  const mask = g.op('Greater', [hits, g.scalar(0, 'lsh_none')]);
  const count = g.op('ReduceSum', [g.op('Cast', [mask], { to: 1 }), g.int64Const('lsh_row_axis', [1])], { keepdims: 1 }); // [B, 1]
  const tooFew = g.op('Less', [count, g.scalar(minCandidates - 0.5, 'lsh_min')]);
  return g.op('Or', [mask, tooFew]);
}
