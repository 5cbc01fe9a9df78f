/**
 * Activations at many insertion tensors at once: one model that outputs every tensor of a group
 * (the graph up to the deepest of them, extracted with the project's cut code) and one onnxruntime
 * pass over the images per group. Groups are sized so that their activations fit a memory budget,
 * so a deep model costs a few passes instead of one head per layer.
 */
import * as ort from 'onnxruntime-node';
import { throwIfCancelled } from '../cancel';
import { UserError } from '../errors';
import type { ModelGraph } from '../model/graph';
import { modelInput } from '../model/graph';
import type { LoadedModel } from '../model/load';
import { extractModel } from '../onnx/cut';
import { encodeModel } from '../onnx/proto';
import { createSession, type ProviderChoice } from '../runtime/session';

/** Activations kept in memory at once, in float32 values (256 MiB). */
export const ACTIVATION_BUDGET_VALUES = 64 * 1024 * 1024;

export interface LayerActivationOptions {
  batchSize: number;
  threads?: number;
  ep?: ProviderChoice;
  signal?: AbortSignal;
  budgetValues?: number;
  onBatch?(done: number, total: number): void;
}

/** Values per sample at `tensor`, from the graph's shapes (batch dimension dropped). */
export function sampleSize(graph: ModelGraph, tensor: string): number | undefined {
  const shape = graph.shapes.get(tensor);
  if (!shape || shape.length === 0 || shape.slice(1).some((d) => typeof d !== 'number')) return undefined;
  return (shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
}

/** Consecutive groups of tensors whose activations for `count` samples fit the budget (at least one tensor each). */
export function groupBySize(sizes: readonly number[], count: number, budgetValues: number): number[][] {
  const groups: number[][] = [];
  let current: number[] = [];
  let used = 0;
  sizes.forEach((size, k) => {
    const need = size * count;
    if (current.length && used + need > budgetValues) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(k);
    used += need;
  });
  if (current.length) groups.push(current);
  return groups;
}

/**
 * Calls `visit(tensor, values, size)` for each tensor, in order, with the [count, size] activations
 * of the `count` images `x` (model input layout). Only one group's activations are held at a time.
 */
export async function forEachLayerActivation(
  model: { loaded: LoadedModel; graph: ModelGraph },
  tensors: readonly string[],
  x: Float32Array,
  count: number,
  options: LayerActivationOptions,
  visit: (tensor: string, values: Float32Array, size: number) => void,
): Promise<void> {
  const input = modelInput(model.graph);
  const inputSize = input.sampleDims.reduce((a, b) => a * b, 1);
  // A size the probe did not record counts as large, so that it gets a pass of its own.
  const budget = options.budgetValues ?? ACTIVATION_BUDGET_VALUES;
  const sizes = tensors.map((t) => sampleSize(model.graph, t) ?? Math.ceil(budget / Math.max(count, 1)));
  const groups = groupBySize(sizes, count, budget);
  const total = groups.length * count;
  let done = 0;
  for (const group of groups) {
    const names = group.map((k) => tensors[k]);
    const probe = extractModel(model.loaded.model, [input.name], names, model.graph.shapes, 'isometry probe');
    const session = await createSession(encodeModel(probe), {
      ep: options.ep ?? 'cpu',
      threads: options.threads,
      label: `the layer probe of ${model.graph.path}`,
    });
    try {
      const values: Float32Array[] = [];
      const batch = input.fixedBatch ?? Math.max(1, options.batchSize);
      for (let start = 0; start < count; start += batch) {
        throwIfCancelled(options.signal);
        const n = Math.min(batch, count - start);
        let rows = x.subarray(start * inputSize, (start + n) * inputSize);
        if (input.fixedBatch && n < batch) {
          const padded = new Float32Array(batch * inputSize);
          padded.set(rows);
          rows = padded;
        }
        const feedRows = input.fixedBatch ?? n;
        const out = await session.run({ [input.name]: new ort.Tensor('float32', rows, [feedRows, ...input.sampleDims]) }, names);
        names.forEach((name, g) => {
          const data = out[name].data as Float32Array;
          const size = data.length / feedRows;
          if (!values[g]) {
            if (!Number.isInteger(size) || size <= 0)
              throw new UserError(`Tensor '${name}' has ${data.length} values for a batch of ${feedRows}; it is not per sample.`);
            values[g] = new Float32Array(count * size);
          }
          values[g].set(data.subarray(0, n * size), start * size);
        });
        done += n;
        options.onBatch?.(done, total);
      }
      names.forEach((name, g) => visit(name, values[g], values[g].length / count));
    } finally {
      await session.release();
    }
  }
}
