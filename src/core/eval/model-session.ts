/**
 * A loaded classifier ready to run: the model file, its graph description, and an onnxruntime
 * session, with the input and output it is evaluated through.
 */
import { UserError } from '../errors';
import { buildModelGraph, type ModelGraph } from '../model/graph';
import { inferShapes } from '../runtime/shapes';
import { assertFloatInputs, checkClassifierOutput, loadModel, type LoadedModel, type LoadModelOptions } from '../model/load';
import { createSession, runBatched, type Session, type SessionOptions } from '../runtime/session';
export { argmaxRows } from '../tensor';

export interface ClassifierModel {
  loaded: LoadedModel;
  graph: ModelGraph;
  session: Session;
  input: string;
  output: string;
  /** Per-sample input dims (without batch). */
  sampleDims: number[];
  /** The batch size the model requires, when its batch dimension is fixed. */
  fixedBatch?: number;
  numClasses: number;
}

export async function inspectModel(modelPath: string, threads = 1, load: LoadModelOptions = {}): Promise<{ loaded: LoadedModel; graph: ModelGraph }> {
  const loaded = loadModel(modelPath, load);
  const shapes = await inferShapes(loaded, threads);
  return { loaded, graph: buildModelGraph(loaded, shapes) };
}

/** Input name, per-sample dims and fixed batch (if any) of a single-input image classifier. */
export function modelInput(graph: ModelGraph): { name: string; sampleDims: number[]; fixedBatch?: number } {
  if (graph.inputs.length !== 1) {
    throw new UserError(`'${graph.path}' has ${graph.inputs.length} inputs (${graph.inputs.map((i) => i.name).join(', ')}); an image classifier has one.`);
  }
  const { name, shape: dims } = graph.inputs[0];
  if (dims.length < 2 || dims.slice(1).some((d) => typeof d !== 'number' || d <= 0)) {
    throw new UserError(
      `Input '${name}' of '${graph.path}' has shape [${dims.join(', ')}]; every dimension but the batch must be fixed.`,
      'Re-export the model with fixed image dimensions.',
    );
  }
  return { name, sampleDims: dims.slice(1) as number[], fixedBatch: typeof dims[0] === 'number' && dims[0] > 0 ? dims[0] : undefined };
}

export async function openClassifier(modelPath: string, options: SessionOptions, load: LoadModelOptions = {}): Promise<ClassifierModel> {
  const { loaded, graph } = await inspectModel(modelPath, options.threads, load);
  assertFloatInputs(loaded);
  const input = modelInput(graph);
  const output = graph.outputs[0];
  const outShape = graph.shapes.get(output.name) ?? output.shape;
  const numClasses = checkClassifierOutput(outShape, output.name, modelPath);
  const session = await createSession(loaded.bytes, { ...options, label: modelPath });
  return {
    loaded,
    graph,
    session,
    input: input.name,
    output: output.name,
    sampleDims: input.sampleDims,
    fixedBatch: input.fixedBatch,
    numClasses,
  };
}

/** Logits of `count` samples, in batches. */
export async function classifierLogits(
  m: ClassifierModel,
  x: Float32Array,
  count: number,
  batchSize: number,
  onBatch?: (done: number) => void,
): Promise<Float32Array> {
  const { data } = await runBatched(
    m.session,
    { name: m.input, data: x, count, sampleDims: m.sampleDims, fixedBatch: m.fixedBatch },
    m.output,
    batchSize,
    onBatch,
  );
  return data;
}
