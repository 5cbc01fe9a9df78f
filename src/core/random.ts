/**
 * A small, fast, seeded pseudo-random number generator for reproducible attacks.
 *
 * Generator: sfc32 (Chris Doty-Humphrey's "small fast chaotic" PRNG, 128-bit state, passes
 * PractRand), its state filled by splitmix32 from a 64-bit key. Not cryptographic.
 *
 * Streams: `fork(label)` derives a child stream from this stream's key and the label only — not
 * from how many numbers were drawn — so `rng.fork('pgd').fork(sampleIndex)` gives the same numbers
 * whatever the batch size, batch order or work done before. Keys are 64-bit so that thousands of
 * per-sample streams practically never collide.
 */
import { UserError } from './errors';

const TWO_POW_32 = 4294967296;

/** MurmurHash3's 32-bit finaliser: full avalanche of a 32-bit word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of `text`, from `basis`, finalised with fmix32. */
function hash32(text: string, basis: number): number {
  let h = basis >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** splitmix32: a counter-based generator used only to spread a key over the sfc32 state. */
function splitmix32(state: number): [next: number, out: number] {
  const s = (state + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return [s, (z ^ (z >>> 15)) >>> 0];
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;
  /** The second value of the last Marsaglia polar pair, if not used yet. */
  private spare: number | undefined;
  /** The 64-bit key (two words) that determines this stream and its forks. */
  private readonly key0: number;
  private readonly key1: number;

  /** A stream from a 32-bit integer seed (any integer is accepted and taken modulo 2^32). */
  constructor(seed: number);
  /** @internal Used by `fork`: a stream from a 64-bit key. */
  constructor(seed: number, key1: number);
  constructor(seed: number, key1?: number) {
    if (!Number.isFinite(seed) || !Number.isInteger(seed)) {
      throw new UserError(`Invalid random seed ${seed}`, 'Use an integer seed, e.g. --seed 0.');
    }
    // Integers beyond 2^32 reduce modulo 2^32 (exact for |seed| < 2^53).
    this.key0 = (((seed % TWO_POW_32) + TWO_POW_32) % TWO_POW_32) >>> 0;
    this.key1 = key1 === undefined ? 0x2545f491 : key1 >>> 0;
    let s0 = this.key0;
    let s1 = this.key1 ^ 0x6a09e667;
    let out: number;
    [s0, out] = splitmix32(s0);
    this.a = out;
    [s0, out] = splitmix32(s0);
    this.b = out;
    [s1, out] = splitmix32(s1);
    this.c = out;
    [s1, out] = splitmix32(s1);
    this.d = out;
    // Discard the first outputs so that nearby keys diverge fully.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** A uniform 32-bit unsigned integer (sfc32 step). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), n a positive integer ≤ 2^32 (bias ≤ n / 2^32, negligible here). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new RangeError(`Rng.int: invalid n ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal deviate (Marsaglia polar method; the second value of each pair is cached). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u: number;
    let v: number;
    let s: number;
    do {
      u = 2 * this.next() - 1;
      v = 2 * this.next() - 1;
      s = u * u + v * v;
    } while (s >= 1 || s === 0);
    const f = Math.sqrt((-2 * Math.log(s)) / s);
    this.spare = v * f;
    return u * f;
  }

  /** Rademacher variable: −1 or +1 with equal probability. */
  sign(): -1 | 1 {
    return this.nextUint32() & 0x80000000 ? -1 : 1;
  }

  /** Fills `out` with uniform values in [lo, hi) and returns it. */
  uniform<T extends Float32Array | Float64Array>(out: T, lo = 0, hi = 1): T {
    const w = hi - lo;
    for (let i = 0; i < out.length; i++) out[i] = lo + w * this.next();
    return out;
  }

  /** Fills `out` with normal deviates N(mean, std²) and returns it. */
  normals<T extends Float32Array | Float64Array>(out: T, mean = 0, std = 1): T {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Fills `out` with Rademacher signs (±1) and returns it. */
  signs<T extends Float32Array | Float64Array | Int8Array>(out: T): T {
    for (let i = 0; i < out.length; i += 32) {
      const bits = this.nextUint32();
      const end = Math.min(32, out.length - i);
      for (let j = 0; j < end; j++) out[i + j] = (bits >>> j) & 1 ? 1 : -1;
    }
    return out;
  }

  /**
   * An independent child stream determined by this stream's key and `label` alone (draws made on
   * this stream do not affect it). Numbers and strings with the same text give the same child.
   */
  fork(label: string | number): Rng {
    const text = `${this.key0.toString(16)}.${this.key1.toString(16)}/${String(label)}`;
    return new Rng(hash32(text, 0x811c9dc5), hash32(text, 0x9747b28c));
  }
}
