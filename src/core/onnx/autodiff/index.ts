/**
 * ONNX autodiff: from a forward ONNX classifier, one model of standard ONNX ops that computes the
 * forward output and the input gradient (of a loss, or a vector-Jacobian product) in a single
 * onnxruntime run, on any execution provider.
 *
 * Layout: rewrite.ts (exact forward rewrites that make the backward cheaper) → analysis.ts
 * (differentiable path, one error for every unsupported node) → build.ts (reverse-mode walker,
 * model assembly) with rules/ (op → gradient rule, one module per op family), context.ts /
 * emitter.ts (shared broadcasting, per-axis linear maps, opset-aware op forms), geometry.ts
 * (window ops), constants.ts (build-time constant folding), opset.ts, loss.ts; step.ts appends
 * the L∞ step of BIM/PGD to a loss model.
 *
 * Parameter gradients: `wrt` (buildGradientModel's options) names more tensors to differentiate
 * with respect to — initializers (weights, biases, normalisation scales and shifts, PRelu slopes),
 * graph inputs or node outputs; buildObjectiveGradientModel differentiates a scalar objective (the
 * training losses of train-loss.ts) with respect to those alone. train-step.ts builds one training
 * step (forward, loss, gradients, SGD-momentum or Adam update) as one model; core/train runs it.
 *
 * Supported (every opset from 7): Conv, ConvTranspose, Gemm, MatMul, Add, Sub, Mul, Div, Sum,
 * Max, Min, Where, Expand, Neg, Abs, Relu, LeakyRelu, PRelu, Elu, Selu, Sigmoid, Tanh, Softplus, HardSigmoid,
 * HardSwish, Clip, Sqrt, Exp, Log, Reciprocal, Pow, Cast, Identity, Dropout, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool, BatchNormalization, InstanceNormalization, LayerNormalization,
 * Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Pad, Gather, Softmax,
 * LogSoftmax, ReduceMean, ReduceSum, Resize, Upsample; anything computed from shapes or constants.
 * Weights, biases, normalisation parameters and PRelu slopes may be differentiated too (or depend
 * on the input). Refused (listed by unsupportedGradientOps): Clip bounds or Pow exponents that
 * depend on the input or are differentiated; non-constant Gather indices, Slice starts/ends/axes/steps,
 * Pad pads or Resize scales; slicing, gathering, concatenating or reflect/edge-padding along the
 * symbolic batch axis; BatchNormalization/Dropout in training mode; LayerNormalization's Mean or
 * InvStdDev outputs used downstream; Resize cubic, tf_crop_and_resize, antialias,
 * keep_aspect_ratio_policy ≠ stretch, or resizing other than the last two axes; Cast to a type
 * other than float32.
 */
export type { GradientModel, GradientOptions, GradientTarget, LossKind, UnsupportedOp } from './types';
export {
  buildGradientModel,
  buildObjectiveGradientModel,
  unsupportedGradientOps,
  type Objective,
  type ObjectiveGradientModel,
  type WrtGradientOptions,
} from './build';
export { emitTrainingLoss, trainingObjective, type TrainingLoss } from './train-loss';
export { buildLossModel, buildTrainStep, trainableInitializers, type Optimizer, type TrainStepModel, type TrainStepOptions } from './train-step';
export { supportedGradientOps } from './rules';
