/**
 * The dAE's formulas in plain JS (float64): r(h), the closed-form Jacobian diagonal, c(h), γ, Γ and
 * ∇ log c. For tests, diagnostics and gradient checks; independent of onnxruntime.
 */
import { traceWeights } from './model';
import { NORM_EPS, type DaeWeights } from './types';

export interface DaeEvaluation {
  /** c(h), per sample. */
  confidence: Float64Array;
  /** ‖r(h) − h‖₂. */
  reconError: Float64Array;
  /** γ(h). */
  gamma: Float64Array;
  /** Γ(h). */
  curvature: Float64Array;
}

function hiddenLayer(w: DaeWeights, x: ArrayLike<number>, offset: number): { z: Float64Array; sp: Float64Array; spp: Float64Array } {
  const { d, h: hidden } = w;
  const a = Float64Array.from(w.b1);
  for (let i = 0; i < d; i++) {
    const xi = x[offset + i];
    if (xi === 0) continue;
    const row = i * hidden;
    for (let k = 0; k < hidden; k++) a[k] += xi * w.encoder[row + k];
  }
  const z = new Float64Array(hidden);
  const sp = new Float64Array(hidden);
  const spp = new Float64Array(hidden);
  for (let k = 0; k < hidden; k++) {
    if (w.activation === 'sigmoid') {
      const s = 1 / (1 + Math.exp(-a[k]));
      z[k] = s;
      sp[k] = s * (1 - s);
      spp[k] = sp[k] * (1 - 2 * s);
    } else {
      const t = Math.tanh(a[k]);
      z[k] = t;
      sp[k] = 1 - t * t;
      spp[k] = -2 * t * sp[k];
    }
  }
  return { z, sp, spp };
}

/** r(h) for one sample at `offset` of `x`. */
export function daeReconstruct(w: DaeWeights, x: ArrayLike<number>, offset = 0): Float64Array {
  const { d, h: hidden } = w;
  const { z } = hiddenLayer(w, x, offset);
  const r = Float64Array.from(w.b2);
  for (let k = 0; k < hidden; k++) {
    const zk = z[k];
    const row = k * d;
    for (let i = 0; i < d; i++) r[i] += zk * w.decoder[row + i];
  }
  return r;
}

/** The closed-form Jacobian diagonal ∂rᵢ/∂hᵢ = Σₖ W2[i,k] σ'(aₖ) W1[k,i] for one sample. */
export function daeJacobianDiagonal(w: DaeWeights, x: ArrayLike<number>, offset = 0): Float64Array {
  const { d, h: hidden } = w;
  const { sp } = hiddenLayer(w, x, offset);
  const diag = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let acc = 0;
    for (let k = 0; k < hidden; k++) acc += w.decoder[k * d + i] * sp[k] * w.encoder[i * hidden + k];
    diag[i] = acc;
  }
  return diag;
}

/** c(h), ‖r(h) − h‖, γ(h) and Γ(h) for n samples, straight from the formulas (float64). */
export function daeEvaluate(w: DaeWeights, x: ArrayLike<number>, n: number): DaeEvaluation {
  const { d } = w;
  const out: DaeEvaluation = { confidence: new Float64Array(n), reconError: new Float64Array(n), gamma: new Float64Array(n), curvature: new Float64Array(n) };
  for (let j = 0; j < n; j++) {
    const r = daeReconstruct(w, x, j * d);
    let ss = 0;
    for (let i = 0; i < d; i++) ss += (r[i] - x[j * d + i]) ** 2;
    const diag = daeJacobianDiagonal(w, x, j * d);
    let g = 0;
    for (let i = 0; i < d; i++) g += diag[i] - 1;
    g /= d;
    const err = Math.sqrt(ss);
    const curvature = g <= 0 ? 1 : Math.exp(-w.beta * g);
    out.reconError[j] = err;
    out.gamma[j] = g;
    out.curvature[j] = curvature;
    out.confidence[j] = Math.exp((-w.alpha / d) * err) * curvature;
  }
  return out;
}

/**
 * ∇ₕ log c(h) for n samples (float64), in closed form:
 *   ∇‖e‖ = (Jᵀe − e)/‖e‖ with e = r(h) − h, Jᵀe = W1ᵀ(σ'(a) ⊙ W2ᵀe);
 *   ∇γ = W1ᵀ(σ''(a) ⊙ m)/D;  ∇ log c = −α/D ∇‖e‖ − β [γ > 0] ∇γ.
 * With T = the model input this is the dAE part of the gradient of −log(c·softmax_t) (negated).
 */
export function daeLogConfidenceGradient(w: DaeWeights, x: ArrayLike<number>, n: number): Float64Array {
  const { d, h: hidden } = w;
  const m = traceWeights(w);
  const grad = new Float64Array(n * d);
  for (let j = 0; j < n; j++) {
    const off = j * d;
    const { z, sp, spp } = hiddenLayer(w, x, off);
    const r = Float64Array.from(w.b2);
    for (let k = 0; k < hidden; k++) for (let i = 0; i < d; i++) r[i] += z[k] * w.decoder[k * d + i];
    const e = new Float64Array(d);
    let ss = 0;
    for (let i = 0; i < d; i++) {
      e[i] = r[i] - x[off + i];
      ss += e[i] * e[i];
    }
    const norm = Math.sqrt(ss + NORM_EPS);
    let trace = 0;
    for (let k = 0; k < hidden; k++) trace += sp[k] * m[k];
    const gamma = trace / d - 1;
    // Back-propagated hidden cotangent: δₖ = −α/D/‖e‖ · σ'(aₖ)(W2ᵀe)ₖ − β[γ>0]/D · σ''(aₖ) mₖ.
    const delta = new Float64Array(hidden);
    for (let k = 0; k < hidden; k++) {
      let wte = 0;
      for (let i = 0; i < d; i++) wte += w.decoder[k * d + i] * e[i];
      delta[k] = ((-w.alpha / d) * sp[k] * wte) / norm - (gamma > 0 ? (w.beta / d) * spp[k] * m[k] : 0);
    }
    for (let i = 0; i < d; i++) {
      let acc = ((w.alpha / d) * e[i]) / norm; // −α/D · (−e/‖e‖)
      for (let k = 0; k < hidden; k++) acc += w.encoder[i * hidden + k] * delta[k];
      grad[off + i] = acc;
    }
  }
  return grad;
}
