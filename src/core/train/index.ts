/**
 * Training on onnxruntime: the small networks defenses need (the dAE, the retrieval paper head)
 * fitted with the autodiff's parameter gradients, one fused ONNX training step per mini-batch.
 * trainer.ts (mini-batches, epochs, early stopping, cancellation, progress), init.ts (seeded
 * Glorot/He initial values), dense.ts (dense stacks as ONNX models, shared by the defenses).
 */
export { Trainer, trainModel, permutation, type EpochReport, type FitOptions, type FitResult, type TrainerOptions, type TrainSet } from './trainer';
export { fans, glorotUniform, heUniform, initialValues } from './init';
export {
  DENSE_IO,
  denseForward,
  denseLayersOf,
  denseModel,
  denseParamNames,
  fitDense,
  initDense,
  type DenseActivation,
  type DenseFit,
  type DenseFitOptions,
  type DenseLayer,
} from './dense';
export {
  buildTrainStep,
  buildLossModel,
  trainableInitializers,
  withParams,
  OPTIMIZER_DEFAULTS,
  type Optimizer,
  type TrainStepModel,
  type TrainStepOptions,
} from '../onnx/autodiff/train-step';
export { type TrainingLoss } from '../onnx/autodiff/train-loss';
