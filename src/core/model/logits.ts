/**
 * Where a classifier's logits are. Attacks and their losses need logits: a softmax output is never
 * used as logits (its cross-entropy saturates and its gradients vanish, which would make a model
 * look robust). A model whose output is a final Softmax is attacked at the Softmax's input; a
 * converted TensorFlow.js model says in its metadata which tensor it exposes.
 */
import { attrInt } from '../onnx/attributes';
import { tensorValueInfo } from '../onnx/cut';
import { encodeModel, opsetVersion } from '../onnx/proto';
import type { ModelGraph } from './graph';
import type { LoadedModel } from './load';

/** The metadata key the tfjs converter writes (src/core/tfjs/outputs.ts). */
const TFJS_OUTPUT_KEY = 'rlab.output';

export interface LogitsChoice {
  loaded: LoadedModel;
  graph: ModelGraph;
  /** The tensor the attacks read as logits. */
  output: string;
  /** What it is, in words, for the RunResult. */
  note: string;
}

export function logitsOf(loaded: LoadedModel, graph: ModelGraph): LogitsChoice {
  const out = graph.outputs[0]?.name ?? '';
  const tfjs = loaded.model.metadataProps?.find((p) => p.key === TFJS_OUTPUT_KEY)?.value;
  if (tfjs) return { loaded, graph, output: out, note: tfjs };
  const nodes = loaded.model.graph?.node ?? [];
  const producer = nodes.find((n) => n.output?.includes(out));
  const consumers = nodes.filter((n) => n.input?.includes(out));
  const logits = producer?.input?.[0];
  const shape = logits ? graph.shapes.get(logits) : undefined;
  const axis = producer ? attrInt(producer, 'axis', opsetVersion(loaded.model) >= 13 ? -1 : 1) : 0;
  const lastAxis = shape !== undefined && shape.length === 2 && (axis === -1 || axis === 1);
  if (producer?.opType !== 'Softmax' || !logits || !shape || !lastAxis || consumers.length > 0 || graph.outputs.length !== 1) {
    return { loaded, graph, output: out, note: `logits: the model's output '${out}'` };
  }
  const model = { ...loaded.model, graph: { ...loaded.model.graph!, output: [tensorValueInfo(logits, shape)] } };
  return {
    loaded: { ...loaded, model, bytes: encodeModel(model) },
    graph: { ...graph, outputs: [{ name: logits, elemType: graph.outputs[0].elemType, shape }] },
    output: logits,
    note: `logits: the input '${logits}' of the final Softmax '${producer.name || 'Softmax'}' (a softmax output is never attacked as logits)`,
  };
}
