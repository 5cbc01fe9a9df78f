/**
 * Shapes of every tensor of a model: from value_info where the model carries it, otherwise by
 * running probe samples through onnxruntime with every intermediate tensor exposed as an output.
 * The probe runs at batch 1 and batch 2: a dimension that follows the batch is the symbolic batch
 * dimension, every other one is fixed.
 */
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors';
import { dataInputs } from '../onnx/graph-utils';
import type { LoadedModel } from '../model/load';
import { DataType, encodeModel, type ModelProto, type ValueInfoProto } from '../onnx/proto';
import { createSession } from './session';
import { valueInfoDims } from '../model/graph';

/** A dimension: a number, or the name of a symbolic one (the batch dimension, usually). */
export type { Dim } from '../../protocol/model';
import type { Dim } from '../../protocol/model';

const isConcrete = (dims: Dim[]) => dims.every((d) => typeof d === 'number' && d >= 0);

export async function inferShapes(loaded: LoadedModel, threads = 1): Promise<Map<string, Dim[]>> {
  const graph = loaded.model.graph!;
  const shapes = new Map<string, Dim[]>();
  for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    if (v.type?.tensorType?.shape) shapes.set(v.name ?? '', valueInfoDims(v));
  }
  for (const t of graph.initializer ?? []) shapes.set(t.name ?? '', t.dims ?? []);

  const wanted = (graph.node ?? []).flatMap((n) => n.output ?? []).filter((t) => t && !(shapes.has(t) && isConcrete(withoutBatch(shapes.get(t)!))));
  if (wanted.length === 0) return shapes;

  const probe = await probeShapes(loaded, wanted, threads);
  for (const [name, dims] of probe) shapes.set(name, dims);
  return shapes;
}

function withoutBatch(dims: Dim[]): Dim[] {
  return dims.slice(1);
}

async function probeShapes(loaded: LoadedModel, tensors: string[], threads: number): Promise<Map<string, Dim[]>> {
  const graph = loaded.model.graph!;
  const inputs = dataInputs(graph);
  const batchParam = batchDimName(inputs);
  const probeModel: ModelProto = {
    ...loaded.model,
    graph: { ...graph, output: [...(graph.output ?? []), ...tensors.filter((t) => !(graph.output ?? []).some((o) => o.name === t)).map((name) => ({ name }))] },
  };
  const session = await createSession(encodeModel(probeModel), { ep: 'cpu', threads });
  try {
    const runAt = async (batch: number) => session.run(Object.fromEntries(inputs.map((v) => [v.name!, zeros(v, batch)])), tensors);
    const one = await runAt(1);
    const two = batchParam ? await runAt(2) : one;
    const result = new Map<string, Dim[]>();
    for (const t of tensors) {
      const d1 = one[t].dims,
        d2 = two[t].dims;
      result.set(
        t,
        d1.map((d, i) => (batchParam && d2[i] !== d ? batchParam : d)),
      );
    }
    return result;
  } finally {
    await session.release();
  }
}

/** The name of the inputs' symbolic first dimension, if they have one. */
function batchDimName(inputs: ValueInfoProto[]): string | undefined {
  for (const v of inputs) {
    const first = valueInfoDims(v)[0];
    if (typeof first === 'string' || (typeof first === 'number' && first <= 0)) return typeof first === 'string' && first !== '?' ? first : 'N';
  }
  return undefined;
}

function zeros(v: ValueInfoProto, batch: number): ort.Tensor {
  const dims = valueInfoDims(v).map((d, i) => {
    if (i === 0 && (typeof d === 'string' || d <= 0)) return batch;
    if (typeof d === 'string' || d < 0) {
      throw new UserError(
        `Input '${v.name}' has a symbolic dimension '${d}' at axis ${i}; shapes cannot be probed without a concrete size.`,
        'Export the model with fixed spatial dimensions (only the batch dimension may be dynamic).',
      );
    }
    return d;
  });
  const n = dims.reduce((a, b) => a * b, 1);
  const elem = v.type?.tensorType?.elemType ?? DataType.FLOAT;
  switch (elem) {
    case DataType.FLOAT:
      return new ort.Tensor('float32', new Float32Array(n), dims);
    case DataType.INT64:
      return new ort.Tensor('int64', new BigInt64Array(n), dims);
    case DataType.INT32:
      return new ort.Tensor('int32', new Int32Array(n), dims);
    case DataType.UINT8:
      return new ort.Tensor('uint8', new Uint8Array(n), dims);
    default:
      throw new UserError(`Input '${v.name}' has element type ${DataType[elem] ?? elem}; only float32 image inputs are supported.`);
  }
}
