/**
 * The dAE defense as one ONNX graph, c(h)·softmax(logits), with the weights as initializers; the
 * weights read back from a fitted stage; and a statistics graph (‖r(h) − h‖ and γ(h) per sample)
 * for the calibration on the reference set.
 */
import { UserError } from '../../errors';
import { GraphBuilder, makeModel } from '../../onnx/builder';
import { tensorValueInfo } from '../../onnx/cut';
import type { ModelProto } from '../../onnx/proto';
import { floatTensor, tensorFloat32 } from '../../onnx/tensor-proto';
import { DEFENSE_IO, type DefenseStage } from '../types';
import { INIT, NORM_EPS, DAE_CONFIDENCE_OUTPUT, type DaeActivation, type DaeParams, type DaeWeights } from './types';

/** mₖ = Σᵢ W1[k,i] W2[i,k]: Σᵢ ∂rᵢ/∂hᵢ = Σₖ σ'(aₖ) mₖ. */
export function traceWeights(w: DaeWeights): Float64Array {
  const m = new Float64Array(w.h);
  for (let k = 0; k < w.h; k++) {
    let acc = 0;
    for (let i = 0; i < w.d; i++) acc += w.encoder[i * w.h + k] * w.decoder[k * w.d + i];
    m[k] = acc;
  }
  return m;
}

/**
 * The standalone defense model: inputs DEFENSE_IO.activation [N, ...dims] and DEFENSE_IO.logits
 * [N, C]; outputs DEFENSE_IO.scores = c(h) · softmax(logits) [N, C] and `dae_confidence` = c(h) [N].
 * Opset 13; every op is in the default domain and keeps its semantics in later opsets (the sums
 * are MatMuls with constant vectors, not ReduceSum, whose signature changed in opset 13).
 */
export function buildDaeModel(w: DaeWeights, dims: readonly number[], numClasses?: number): ModelProto {
  const { d, h: hidden } = w;
  if (dims.reduce((a, b) => a * b, 1) !== d) throw new RangeError(`buildDaeModel: dims [${dims.join(', ')}] do not hold ${d} values`);
  const b = new GraphBuilder('dae_');
  const init = (name: string, shape: number[], values: ArrayLike<number>): string => {
    b.initializers.push(floatTensor(name, shape, values));
    return name;
  };
  const enc = init(INIT.encoder, [d, hidden], w.encoder);
  const b1 = init(INIT.b1, [hidden], w.b1);
  const dec = init(INIT.decoder, [hidden, d], w.decoder);
  const b2 = init(INIT.b2, [d], w.b2);
  const mt = init(INIT.traceWeights, [hidden, 1], traceWeights(w));
  const ones = init(INIT.ones, [d, 1], new Float32Array(d).fill(1));

  const x = b.op('Flatten', [DEFENSE_IO.activation], { axis: 1 }); // [N, D]
  const a = b.op('Add', [b.op('MatMul', [x, enc]), b1]); // [N, H]
  const z = b.op(w.activation === 'sigmoid' ? 'Sigmoid' : 'Tanh', [a]);
  const r = b.op('Add', [b.op('MatMul', [z, dec]), b2]); // [N, D]
  const e = b.op('Sub', [r, x]);
  const sq = b.op('MatMul', [b.op('Mul', [e, e]), ones]); // [N, 1] = ‖r − h‖²
  const norm = b.op('Sqrt', [b.op('Add', [sq, b.scalar(NORM_EPS, 'eps')])]);
  const recon = b.op('Exp', [b.op('Mul', [norm, b.scalar(-w.alpha / d, 'neg_alpha_over_d')])]);
  // σ'(a): sigmoid' = z(1 − z), tanh' = 1 − z².
  const one = b.scalar(1, 'one');
  const sp = w.activation === 'sigmoid' ? b.op('Mul', [z, b.op('Sub', [one, z])]) : b.op('Sub', [one, b.op('Mul', [z, z])]);
  const trace = b.op('MatMul', [sp, mt]); // [N, 1] = Σᵢ ∂rᵢ/∂hᵢ
  const gamma = b.op('Sub', [b.op('Mul', [trace, b.scalar(1 / d, 'inv_d')]), one]);
  const curvature = b.op('Exp', [b.op('Mul', [b.op('Relu', [gamma]), b.scalar(-w.beta, 'neg_beta')])]);
  const c = b.op('Mul', [recon, curvature]); // [N, 1]
  const p = b.op('Softmax', [DEFENSE_IO.logits], { axis: 1 });
  b.node('Mul', [p, c], {}, [DEFENSE_IO.scores]);
  b.node('Reshape', [c, b.int64Const('flat', [-1])], {}, [DAE_CONFIDENCE_OUTPUT]);

  const classes = numClasses ?? 'C';
  const graph = b.graph(
    'dae_confidence',
    [tensorValueInfo(DEFENSE_IO.activation, ['N', ...dims]), tensorValueInfo(DEFENSE_IO.logits, ['N', classes])],
    [tensorValueInfo(DEFENSE_IO.scores, ['N', classes]), tensorValueInfo(DAE_CONFIDENCE_OUTPUT, ['N'])],
  );
  return makeModel(graph, 13);
}

/** The dAE weights (and α, β) back from a defense model built by `buildDaeModel`. */
export function daeWeightsFromStage(stage: DefenseStage): DaeWeights {
  const params = stage.params as unknown as DaeParams;
  const inits = new Map((stage.model.graph?.initializer ?? []).map((t) => [t.name ?? '', t]));
  const get = (name: string): Float32Array => {
    const t = inits.get(name);
    if (!t) throw new UserError(`The dAE defense model has no initializer '${name}'.`, 'Refit the defense.');
    return tensorFloat32(t);
  };
  const encoder = get(INIT.encoder);
  const d = params.d;
  const hidden = encoder.length / d;
  const activation: DaeActivation = params.activation ?? ((stage.model.graph?.node ?? []).some((n) => n.opType === 'Tanh') ? 'tanh' : 'sigmoid');
  return { d, h: hidden, activation, encoder, b1: get(INIT.b1), decoder: get(INIT.decoder), b2: get(INIT.b2), alpha: params.alpha, beta: params.beta };
}

/** Outputs of the statistics graph. */
export const DAE_STATS = { input: 'h', reconError: 'recon_error', gamma: 'gamma' } as const;

/**
 * ‖r(h) − h‖₂ and γ(h) for a batch of raw activations h [N, D] (the same float32 arithmetic as
 * the defense model): the reference statistics that calibrate α.
 */
export function buildDaeStatisticsModel(w: DaeWeights): ModelProto {
  const { d, h: hidden } = w;
  const b = new GraphBuilder('dae_stats_');
  const x = DAE_STATS.input;
  const a = b.op('Add', [b.op('MatMul', [x, b.floatConst('encoder', [d, hidden], w.encoder)]), b.floatConst('b1', [hidden], w.b1)]);
  const z = b.op(w.activation === 'sigmoid' ? 'Sigmoid' : 'Tanh', [a]);
  const r = b.op('Add', [b.op('MatMul', [z, b.floatConst('decoder', [hidden, d], w.decoder)]), b.floatConst('b2', [d], w.b2)]);
  const e = b.op('Sub', [r, x]);
  const flat = b.int64Const('flat', [-1]);
  b.node('Reshape', [b.op('Sqrt', [b.op('MatMul', [b.op('Mul', [e, e]), b.floatConst('ones', [d, 1], new Float32Array(d).fill(1))])]), flat], {}, [
    DAE_STATS.reconError,
  ]);
  const one = b.scalar(1, 'one');
  const sp = w.activation === 'sigmoid' ? b.op('Mul', [z, b.op('Sub', [one, z])]) : b.op('Sub', [one, b.op('Mul', [z, z])]);
  const trace = b.op('MatMul', [sp, b.floatConst('trace_weights', [hidden, 1], traceWeights(w))]);
  b.node('Reshape', [b.op('Sub', [b.op('Mul', [trace, b.scalar(1 / d, 'inv_d')]), one]), flat], {}, [DAE_STATS.gamma]);
  const graph = b.graph(
    'dae_statistics',
    [tensorValueInfo(x, ['N', d])],
    [tensorValueInfo(DAE_STATS.reconError, ['N']), tensorValueInfo(DAE_STATS.gamma, ['N'])],
  );
  return makeModel(graph, 13);
}
