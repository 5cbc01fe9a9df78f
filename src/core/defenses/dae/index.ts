/**
 * The denoising-autoencoder confidence defense (Spigler, "Denoising Autoencoders for
 * Overgeneralization in Neural Networks"; the formulas below are the paper's).
 *
 * A dAE r is trained on the reference activations h ∈ R^D at an insertion point T (T may be the
 * model input itself, the paper's setting). For a new activation h the confidence is
 *
 *   c(h) = exp(−α/D · ‖r(h) − h‖₂) · Γ(h)
 *   Γ(h) = 1 if γ(h) ≤ 0, exp(−β γ(h)) otherwise, i.e. exp(−β · max(γ, 0))
 *   γ(h) = 1/D · Σᵢ (∂rᵢ/∂hᵢ (h) − 1)
 *
 * and the defended classifier outputs ỹ = c(h) · softmax(logits); a sample is rejected when its top
 * scaled probability is below a threshold (the paper reports 0 %, 90 % and 99 %).
 *
 * Architecture (the paper leaves it open): one hidden layer,
 *
 *   r(h) = W2 σ(W1 h + b1) + b2,   W1 ∈ R^{H×D}, W2 ∈ R^{D×H}, σ = sigmoid (or tanh),
 *
 * for which the Jacobian diagonal is exact and closed-form:
 *
 *   ∂rᵢ/∂hᵢ = Σₖ W2[i,k] σ'(aₖ) W1[k,i],  a = W1 h + b1,
 *
 * so Σᵢ ∂rᵢ/∂hᵢ = σ'(a) · m with the constant vector mₖ = Σᵢ W1[k,i] W2[i,k] (the row sums of
 * W1 ⊙ W2ᵀ): γ costs one extra [N,H]×[H,1] MatMul. (A trained dAE contracts: on the demo's
 * reference activations γ ≈ −0.97 at the input (H < D), so Γ = 1 there and the reconstruction term
 * decides; Γ bites for curvature-positive regions, e.g. with H ≥ D.) The whole c(h) is plain ONNX (MatMul, Add, Sub,
 * Mul, Sigmoid/Tanh, Sqrt, Exp, Relu, Softmax, Flatten, Reshape), so the defended model runs on any
 * execution provider and a generic ONNX autodiff differentiates through c.
 *
 * Layout: types.ts (options, weights, recorded parameters, defaults), fit.ts (normalisation,
 * denoising training on onnxruntime through core/train, folding, α calibration), model.ts (the
 * defense graph and the statistics graph), reference.ts (the formulas in plain JS), run.ts
 * (running a stage, acceptance, the threshold table), serialize.ts (one ONNX file), stats.ts.
 */
export type { DaeActivation, DaeOptions, DaeParams, DaeReference, DaeWeights, Quantiles } from './types';
export { DAE_CONFIDENCE_OUTPUT, DAE_DEFAULTS } from './types';
export { fitDae } from './fit';
export { buildDaeModel, daeWeightsFromStage, traceWeights } from './model';
export { daeEvaluate, daeJacobianDiagonal, daeLogConfidenceGradient, daeReconstruct, type DaeEvaluation } from './reference';
export { daeAcceptance, runDaeStage, thresholdTable, type ThresholdRow } from './run';
export { quantile } from './stats';
