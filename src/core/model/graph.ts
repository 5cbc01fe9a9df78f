/**
 * ModelGraph: what the inspector, the CLI and the defenses need to know about a model: its inputs
 * and outputs, every layer with op, output shapes and parameter count, and the insertion points.
 */
import { UserError } from '../errors';
import { dataInputs } from '../onnx/graph-utils';
import type { LoadedModel } from './load';
import { opsetVersion, type NodeProto, type ValueInfoProto } from '../onnx/proto';
import { dataTypeName, elementCount } from '../onnx/tensor-proto';
import { insertionPoints } from './insertion-points';
import type { Dim, GraphIO, Layer, ModelSummary } from '../../protocol/model';

export type { GraphIO, Layer } from '../../protocol/model';

export interface ModelGraph extends ModelSummary {
  /** Shapes of every tensor known (value_info or a probe run). */
  shapes: Map<string, Dim[]>;
}

export function nodeName(node: NodeProto, index: number): string {
  return node.name && node.name.length > 0 ? node.name : `${node.opType}_${index}`;
}

export function valueInfoDims(v: ValueInfoProto): Dim[] {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined ? d.dimValue : d.dimParam || '?'));
}

function io(v: ValueInfoProto): GraphIO {
  return { name: v.name ?? '', elemType: dataTypeName(v.type?.tensorType?.elemType).toLowerCase(), shape: valueInfoDims(v) };
}

export function buildModelGraph(loaded: LoadedModel, shapes: Map<string, Dim[]>): ModelGraph {
  const graph = loaded.model.graph!;
  const initSizes = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', elementCount(t)]));
  const counted = new Set<string>();
  const valid = new Set(insertionPoints(graph));
  const layers: Layer[] = (graph.node ?? []).map((node, index) => {
    let params = 0;
    for (const input of node.input ?? []) {
      const size = initSizes.get(input);
      if (size !== undefined && !counted.has(input)) {
        params += size;
        counted.add(input);
      }
    }
    const outputs = node.output ?? [];
    return {
      index,
      name: nodeName(node, index),
      op: node.opType ?? '?',
      inputs: (node.input ?? []).filter((i) => i !== ''),
      outputs,
      shape: shapes.get(outputs[0]),
      params,
      insertionPoint: outputs.length > 0 && valid.has(outputs[0]),
    };
  });
  return {
    path: loaded.path,
    sha256: loaded.sha256,
    opset: opsetVersion(loaded.model),
    producer: [loaded.model.producerName, loaded.model.producerVersion].filter(Boolean).join(' '),
    inputs: dataInputs(graph).map(io),
    outputs: (graph.output ?? []).map(io),
    layers,
    insertionTensors: [...valid],
    shapes,
    totalParams: layers.reduce((s, l) => s + l.params, 0),
  };
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
