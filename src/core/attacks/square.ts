/**
 * Square Attack (Andriushchenko et al. 2020), gradient-free random search on the margin. Each
 * iteration changes one square window of the current best perturbation and keeps the change only
 * if the margin improves (Alg. 1); a sample stops as soon as it is fooled or its query budget is
 * spent. The window covers a fraction p of the pixels (side s = round(√(p·h·w))) that shrinks on
 * the paper's piecewise-constant schedule (`squareSchedule`).
 *
 *   linf (Alg. 2): init with vertical stripes x + eps·u, u ∈ {±1} per channel and column; each
 *     update sets the window of each channel to a random ±eps.
 *   l2 (Alg. 3): init with a grid of "pseudo-Gaussian" bumps scaled to ‖δ‖₂ = eps; each update
 *     moves the mass of a second window into the first window (new bump + its old content),
 *     then rescales δ to the sphere of radius eps.
 *
 * Images are taken as channels × height × width, from `sampleDims`: [c, h, w] (or [h, w, c]
 * when the last dimension is ≤ 4 and the first is not), [h, w], or a flat vector as 1 × n.
 * Windows may sit at every position (the paper's Alg. 1; the reference code omits the last one).
 */
import type { Rng } from '../random';
import { defineAttack } from './spec';
import { BestTracker, checkInteger, checkPositive, clamp, logitsChunked, resolveContext, throwIfAborted } from './common';
import type { AttackContext } from './common';
import type { AttackOptions, AttackOutcome, Classifier } from './types';

export interface SquareOptions extends AttackOptions {
  /** Forward passes per sample, including the initialisation (default 5000). */
  queries?: number;
  /** Initial fraction p of pixels changed (default 0.05 for linf, 0.1 for l2). */
  pInit?: number;
}

/** How to index pixel (channel, row, col) of one sample: ch·cs + row·rs + col·ws. */
interface Layout {
  c: number;
  h: number;
  w: number;
  cs: number;
  rs: number;
  ws: number;
}

export function imageLayout(dims: readonly number[]): Layout {
  if (dims.length <= 1) {
    const w = dims[0] ?? 1;
    return { c: 1, h: 1, w, cs: w, rs: w, ws: 1 };
  }
  const [a, b, e] = dims.slice(-3) as [number, number, number];
  if (dims.length === 2) return { c: 1, h: dims[0], w: dims[1], cs: dims[0] * dims[1], rs: dims[1], ws: 1 };
  if (dims.length === 3 && e <= 4 && a > 4) return { c: e, h: a, w: b, cs: 1, rs: b * e, ws: e }; // HWC
  const c = dims.slice(0, -2).reduce((p, q) => p * q, 1);
  return { c, h: b, w: e, cs: b * e, rs: e, ws: 1 }; // CHW
}

/**
 * The fraction of pixels p_i changed at iteration i of n (the reference implementation's
 * schedule, defined for 10,000 iterations and rescaled to n): p halves at iterations
 * 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000.
 */
export function squareSchedule(pInit: number, i: number, n: number): number {
  const it = Math.floor((i / n) * 10000);
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let halvings = 0;
  while (halvings < bounds.length && it > bounds[halvings]) halvings++;
  return pInit / 2 ** halvings;
}

/** Window height and width for fraction p: a square of side round(√(p·h·w)), or a 1 × round(p·w) segment for flat inputs. */
function windowSize(p: number, L: Layout, minSide: number, odd: boolean): [number, number] {
  let s = Math.round(L.h === 1 ? p * L.w : Math.sqrt(p * L.h * L.w));
  s = Math.max(s, minSide);
  if (odd && s % 2 === 0) s++;
  // At most h − 1 (w − 1) as in the reference code, so that windows move around; at least 1.
  const fit = (side: number, dim: number) => clamp(side, 1, Math.max(1, dim - 1));
  return [L.h === 1 ? 1 : fit(s, L.h), fit(s, L.w)];
}

/** queries: forward passes per sample (the paper uses 10,000); pInit per norm as in the paper's code. */
const DEFAULTS = { queries: 5000, pInitLinf: 0.05, pInitL2: 0.1 } as const;

export const SQUARE = defineAttack({
  name: 'square',
  title: 'Square Attack (gradient-free)',
  reference: 'Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random search", ECCV 2020',
  gradientFree: true,
  norms: ['linf', 'l2'],
  uses: ['queries', 'targeted'],
  defaults: DEFAULTS,
  run: (c, x, labels, o, rng) => squareAttack(c, x, labels, o, rng),
});

export async function squareAttack(classifier: Classifier, x: Float32Array, labels: Int32Array, options: SquareOptions, rng?: Rng): Promise<AttackOutcome> {
  const ctx = resolveContext(classifier, x, labels, options, rng);
  const defaults = DEFAULTS;
  const budget = checkInteger(options.queries ?? defaults.queries, 'queries', 1);
  const pInit = checkPositive(options.pInit ?? (ctx.norm === 'linf' ? defaults.pInitLinf : defaults.pInitL2), 'pInit');
  if (pInit > 1) throw new RangeError(`square: pInit ${pInit} > 1`);
  const L = imageLayout(classifier.sampleDims);
  const { d } = ctx;
  const tracker = new BestTracker(ctx, x);
  const propose = ctx.norm === 'linf' ? proposeLinf : proposeL2;

  // Query 1: the initialisation; then one query per iteration while the budget lasts.
  for (let i = -1; i < budget - 1; i++) {
    const idx = tracker.remaining();
    if (idx.length === 0) break;
    throwIfAborted(ctx.signal);
    const batch = new Float32Array(idx.length * d);
    const p = i < 0 ? 0 : squareSchedule(pInit, i, budget);
    for (let r = 0; r < idx.length; r++) {
      const j = idx[r];
      const out = batch.subarray(r * d, (r + 1) * d);
      const x0 = x.subarray(j * d, (j + 1) * d);
      const init = i < 0;
      propose(out, x0, init ? undefined : tracker.best.subarray(j * d, (j + 1) * d), p, L, ctx, ctx.stream(j));
    }
    tracker.countQueries(idx);
    tracker.observe(idx, batch, await logitsChunked(classifier, batch, idx.length, ctx));
  }
  return tracker.result();
}

type Propose = (out: Float32Array, x0: Float32Array, best: Float32Array | undefined, p: number, L: Layout, ctx: AttackContext, rng: Rng) => void;

/** linf: the initial stripes (best undefined) or a random ±eps square on top of `best`. */
const proposeLinf: Propose = (out, x0, best, p, L, ctx, rng) => {
  const { eps, lo, hi } = ctx;
  if (!best) {
    // Vertical stripes: one sign per channel and column, the same down the column (Alg. 2, init).
    for (let ch = 0; ch < L.c; ch++) {
      for (let col = 0; col < L.w; col++) {
        const v = eps * rng.sign();
        for (let row = 0; row < L.h; row++) {
          const i = ch * L.cs + row * L.rs + col * L.ws;
          out[i] = clamp(x0[i] + v, lo, hi);
        }
      }
    }
    return;
  }
  out.set(best);
  const [sh, sw] = windowSize(p, L, 1, false);
  const r0 = rng.int(L.h - sh + 1);
  const c0 = rng.int(L.w - sw + 1);
  const v = new Float64Array(L.c);
  // Resample until the window actually changes (the reference code's loop; bounded here).
  for (let tries = 0; tries < 100; tries++) {
    for (let ch = 0; ch < L.c; ch++) v[ch] = eps * rng.sign();
    let changed = false;
    forWindow(L, r0, c0, sh, sw, (ch, i) => {
      if (Math.abs(clamp(x0[i] + v[ch], lo, hi) - best[i]) >= 1e-7) changed = true;
    });
    if (changed) break;
  }
  forWindow(L, r0, c0, sh, sw, (ch, i) => {
    out[i] = clamp(x0[i] + v[ch], lo, hi);
  });
};

/** l2: the initial grid of bumps (best undefined) or the two-window update of Alg. 3. */
const proposeL2: Propose = (out, x0, best, p, L, ctx, rng) => {
  const { eps, d } = ctx;
  const delta = new Float64Array(d);
  if (!best) {
    // A grid of bumps of side h/5, each with a random sign per channel (reference code's init).
    const sh = L.h === 1 ? 1 : Math.max(1, Math.floor(Math.min(L.h, L.w) / 5));
    const sw = L.h === 1 ? Math.max(1, Math.floor(L.w / 5)) : sh;
    const rows = Math.floor(L.h / sh);
    const cols = Math.floor(L.w / sw);
    const top = Math.floor((L.h - rows * sh) / 2);
    const left = Math.floor((L.w - cols * sw) / 2);
    for (let gr = 0; gr < rows; gr++) {
      for (let gc = 0; gc < cols; gc++) {
        const bump = metaPseudoGaussian(sh, sw, rng);
        const signs = Array.from({ length: L.c }, () => rng.sign());
        forWindow(L, top + gr * sh, left + gc * sw, sh, sw, (ch, i, k) => {
          delta[i] += bump[k] * signs[ch];
        });
      }
    }
  } else {
    for (let i = 0; i < d; i++) delta[i] = best[i] - x0[i];
    const [sh, sw] = windowSize(p, L, 3, true);
    const r1 = rng.int(L.h - sh + 1);
    const c1 = rng.int(L.w - sw + 1);
    const r2 = rng.int(L.h - sh + 1);
    const c2 = rng.int(L.w - sw + 1);
    let imageSq = 0;
    for (const v of delta) imageSq += v * v;
    // Per channel: ‖δ‖ in window 1 and in the union of windows 1 and 2.
    const win1Sq = new Float64Array(L.c);
    const unionSq = new Float64Array(L.c);
    forWindow(L, r1, c1, sh, sw, (ch, i) => {
      win1Sq[ch] += delta[i] ** 2;
      unionSq[ch] += delta[i] ** 2;
    });
    forWindow(L, r2, c2, sh, sw, (ch, i, _k, row, col) => {
      const inWin1 = row >= r1 && row < r1 + sh && col >= c1 && col < c1 + sw;
      if (!inWin1) unionSq[ch] += delta[i] ** 2;
    });
    // New window content: a fresh bump with a random sign plus the old content (normalised),
    // scaled to carry the window's old mass plus the budget left, eps² − ‖δ‖², shared by channels.
    const bump = metaPseudoGaussian(sh, sw, rng);
    const signs = Array.from({ length: L.c }, () => rng.sign());
    const fresh = new Float64Array(L.c * sh * sw);
    const freshSq = new Float64Array(L.c);
    forWindow(L, r1, c1, sh, sw, (ch, i, k) => {
      const v = bump[k] * signs[ch] + delta[i] / (Math.sqrt(win1Sq[ch]) + 1e-10);
      fresh[ch * sh * sw + k] = v;
      freshSq[ch] += v * v;
    });
    for (let ch = 0; ch < L.c; ch++) {
      const target = Math.sqrt(Math.max(eps * eps - imageSq, 0) / L.c + unionSq[ch]);
      const f = freshSq[ch] > 0 ? target / Math.sqrt(freshSq[ch]) : 0;
      for (let k = ch * sh * sw; k < (ch + 1) * sh * sw; k++) fresh[k] *= f;
    }
    forWindow(L, r2, c2, sh, sw, (_ch, i) => {
      delta[i] = 0;
    });
    forWindow(L, r1, c1, sh, sw, (ch, i, k) => {
      delta[i] = fresh[ch * sh * sw + k];
    });
  }
  // Rescale δ onto the sphere ‖δ‖₂ = eps, then clip to the range (which can only shrink it).
  let sq = 0;
  for (const v of delta) sq += v * v;
  const f = sq > 0 ? eps / Math.sqrt(sq) : 0;
  for (let i = 0; i < d; i++) out[i] = clamp(x0[i] + f * delta[i], ctx.lo, ctx.hi);
};

/** Calls fn(channel, flat index, index k within the sh × sw window, row, col) over a window in every channel. */
function forWindow(L: Layout, r0: number, c0: number, sh: number, sw: number, fn: (ch: number, i: number, k: number, row: number, col: number) => void): void {
  for (let ch = 0; ch < L.c; ch++) {
    for (let a = 0; a < sh; a++) {
      for (let b = 0; b < sw; b++) fn(ch, ch * L.cs + (r0 + a) * L.rs + (c0 + b) * L.ws, a * sw + b, r0 + a, c0 + b);
    }
  }
}

/**
 * The l2 update's bump (reference code `meta_pseudo_gaussian_pert`): two stacked halves of
 * opposite sign, each a pseudo-Gaussian rectangle, unit l2 norm, transposed at random when square.
 */
export function metaPseudoGaussian(sh: number, sw: number, rng: Rng): Float64Array {
  const out = new Float64Array(sh * sw);
  const top = Math.floor(sh / 2);
  const upper = pseudoGaussian(top, sw);
  const lower = pseudoGaussian(sh - top, sw);
  out.set(upper, 0);
  for (let k = 0; k < lower.length; k++) out[top * sw + k] = -lower[k];
  normalise(out);
  if (sh === sw && rng.next() > 0.5) {
    const t = new Float64Array(out.length);
    for (let a = 0; a < sh; a++) for (let b = 0; b < sw; b++) t[b * sh + a] = out[a * sw + b];
    return t;
  }
  return out;
}

/** Concentric rectangles around the centre, ring r weighted 1/(r+1)² (`pseudo_gaussian_pert_rectangles`), unit norm. */
function pseudoGaussian(rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  if (rows === 0 || cols === 0) return out;
  let a = Math.floor(rows / 2);
  let b = Math.floor(cols / 2);
  const rings = Math.max(a, b) + 1;
  for (let r = 0; r < rings; r++, a--, b--) {
    const w = 1 / (r + 1) ** 2;
    for (let i = Math.max(a, 0); i < Math.min(a + 2 * r + 1, rows); i++) {
      for (let j = Math.max(b, 0); j < Math.min(b + 2 * r + 1, cols); j++) out[i * cols + j] += w;
    }
  }
  normalise(out);
  return out;
}

function normalise(v: Float64Array): void {
  let sq = 0;
  for (const x of v) sq += x * x;
  const norm = Math.sqrt(sq);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i] /= norm;
}
