/**
 * TensorFlow.js models everywhere an ONNX model goes: `loadTfjsModel` reads a model.json (layers
 * model or graph model) and its weight shards and converts them, in memory, to an ONNX ModelProto
 * (opset 13, NHWC input as in tfjs, logits output). Inspection, insertion points, cuts, defenses,
 * generated gradients, attacks and export then work on it unchanged.
 *
 * Layout: files.ts (model.json and shards, path checks, SHA-256) → weights.ts (decoding,
 * dequantisation) → layers-model.ts / graph-model.ts (one rule per Keras layer / TF op) over
 * emit.ts (the ONNX writer with layout tracking) and ops.ts (shared geometry and activations) →
 * outputs.ts (the softmax drop and the "rlab.output" note).
 */
import type { Roots } from '../paths';
import { decodeModel, encodeModel, type ModelProto } from '../onnx/proto';
import { readTfjsFiles, type TfjsModelJson } from './files';
import { convertGraphModel } from './graph-model';
import { convertLayersModel } from './layers-model';

export { isTfjsModelPath } from './files';
export { OUTPUT_KEY, SOURCE_KEY } from './outputs';

/** What loadModel returns (its LoadedModel), spelled out here so that onnx/load.ts and this module do not import each other. */
export interface ConvertedModel {
  /** The path as given (model.json or its folder). */
  path: string;
  /** SHA-256 over model.json and every weight shard, in manifest order. */
  sha256: string;
  model: ModelProto;
  /** The converted model, serialised. */
  bytes: Uint8Array;
}

/** Conversions by SHA-256 of model.json and weights: the encoded ONNX bytes (decoded afresh for each caller). */
const cache = new Map<string, Uint8Array>();
const CACHE_ENTRIES = 8;

/** Loads a model.json (or its folder); `root`: the folder(s) model.json must lie inside (default: the process-wide roots). */
export function loadTfjsModel(modelPath: string, root?: Roots): ConvertedModel {
  const files = readTfjsFiles(modelPath, root);
  let bytes = cache.get(files.sha256);
  if (bytes) {
    cache.delete(files.sha256); // most recently used last
  } else {
    bytes = encodeModel(convertTfjs(files.json, files.weights, files.jsonPath));
  }
  cache.set(files.sha256, bytes);
  while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  return { path: modelPath, sha256: files.sha256, model: decodeModel(bytes), bytes };
}

/** The ONNX model of a parsed model.json and its decoded weights. */
export function convertTfjs(json: TfjsModelJson, weights: Parameters<typeof convertLayersModel>[1], where: string) {
  const producerVersion = [json.generatedBy, json.convertedBy].filter(Boolean).join(', ') || undefined;
  if (isGraphModel(json)) {
    return convertGraphModel(json, weights, where, { producer: 'robustness-lab (from a TensorFlow.js graph model)', producerVersion }).model;
  }
  return convertLayersModel(json.modelTopology, weights, where, { producer: 'robustness-lab (from a TensorFlow.js layers model)', producerVersion }).model;
}

function isGraphModel(json: TfjsModelJson): boolean {
  if (json.format === 'graph-model') return true;
  if (json.format === 'layers-model') return false;
  const top = json.modelTopology as Record<string, unknown> | undefined;
  return !!top && Array.isArray(top.node) && !('class_name' in top);
}
