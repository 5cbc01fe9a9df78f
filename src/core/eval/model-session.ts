/**
 * A loaded classifier ready to run: the model file, its graph description, and an onnxruntime
 * session, with the input and output it is evaluated through.
 */
import { buildModelGraph, modelInput, type ModelGraph } from '../model/graph';
import { logitsOf } from '../model/logits';
import { inferShapes } from '../runtime/shapes';
import { assertFloatInputs, checkClassifierOutput, loadModel, type LoadedModel, type LoadModelOptions } from '../model/load';
import type { DefendedParts } from '../defenses/threats';
import type { DefenseStage } from '../defenses/types';
import type { LaneInit } from '../runtime/lanes';
import { OnnxClassifier } from '../runtime/onnx-classifier';
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
  /** Which tensor the attacks read as logits, in words (a final Softmax is skipped). */
  logits: string;
}

export async function inspectModel(modelPath: string, threads = 1, load: LoadModelOptions = {}): Promise<{ loaded: LoadedModel; graph: ModelGraph }> {
  const loaded = loadModel(modelPath, load);
  const shapes = await inferShapes(loaded, threads);
  return { loaded, graph: buildModelGraph(loaded, shapes) };
}

export async function openClassifier(modelPath: string, options: SessionOptions, load: LoadModelOptions = {}): Promise<ClassifierModel> {
  const inspected = await inspectModel(modelPath, options.threads, load);
  assertFloatInputs(inspected.loaded);
  const { loaded, graph, output, note } = logitsOf(inspected.loaded, inspected.graph);
  const input = modelInput(graph);
  const outShape = graph.shapes.get(output) ?? graph.outputs[0].shape;
  const numClasses = checkClassifierOutput(outShape, output, modelPath);
  const session = await createSession(loaded.bytes, { ...options, label: modelPath });
  return {
    loaded,
    graph,
    session,
    input: input.name,
    output,
    logits: note,
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

/**
 * The one model handle, seen by each consumer: the ONNX classifier over the model's own session,
 * a lane's start message (the bytes the session was built from, not re-encoded) and the parts of
 * the defended classifier. Built here so that no caller copies the model's fields by hand.
 */
export function onnxClassifier(m: ClassifierModel, sessionOptions: SessionOptions): OnnxClassifier {
  return new OnnxClassifier({ ...classifierFields(m), session: m.session, sessionOptions });
}

export function laneInit(m: ClassifierModel, sessionOptions: SessionOptions): LaneInit {
  const { model: _model, shapes, sampleDims, ...rest } = classifierFields(m);
  return { ...rest, model: m.loaded.bytes, shapes: [...shapes], sampleDims: [...sampleDims], sessionOptions };
}

export function defendedParts(m: ClassifierModel, stage: DefenseStage, sessionOptions: SessionOptions, undefended: OnnxClassifier): DefendedParts {
  return { ...classifierFields(m), stage, sessionOptions, undefended };
}

function classifierFields(m: ClassifierModel) {
  return {
    model: m.loaded.model,
    shapes: m.graph.shapes,
    input: m.input,
    output: m.output,
    sampleDims: m.sampleDims,
    numClasses: m.numClasses,
    fixedBatch: m.fixedBatch,
  };
}
