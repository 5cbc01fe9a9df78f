/**
 * Reading a TensorFlow.js model from disk: model.json and its weight shards, every shard from inside
 * the model's folder (no absolute paths, no `..`, no symbolic links that lead out, regular files
 * only: the rule of src/core/paths.ts), with the SHA-256 of everything read.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors';
import { readContainedSync, resolveInside, type Roots } from '../paths';
import { decodeWeightGroup, type WeightSpec, type WeightTensor } from './weights';

export interface ManifestGroup {
  paths: string[];
  weights: WeightSpec[];
}

/** model.json as TensorFlow.js writes it (tf.io and the Python converter). */
export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology?: unknown;
  weightsManifest?: ManifestGroup[];
  signature?: unknown;
  userDefinedMetadata?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface TfjsFiles {
  /** The model.json path (resolved from a folder when a folder was given). */
  jsonPath: string;
  json: TfjsModelJson;
  /** Every weight of every manifest group, by name. */
  weights: Map<string, WeightTensor>;
  /** SHA-256 over model.json's bytes followed by every shard's bytes, in manifest order. */
  sha256: string;
}

/** True when `p` names a TensorFlow.js model: a .json file, or a folder holding model.json. */
export function isTfjsModelPath(p: string): boolean {
  if (/\.json$/i.test(p)) return true;
  try {
    return statSync(p).isDirectory() && existsSync(path.join(p, 'model.json'));
  } catch {
    return false;
  }
}

/** The model.json a path names (the file itself, or model.json inside a folder), checked against `root`. */
export function modelJsonPath(p: string, root?: Roots): string {
  const real = resolveInside(root, p, 'TensorFlow.js model');
  if (statSync(real).isDirectory()) {
    const json = path.join(p, 'model.json');
    if (!existsSync(json)) throw new UserError(`The folder '${p}' holds no model.json.`, 'Give the model.json of a TensorFlow.js model (or its folder).');
    return json;
  }
  return p;
}

/** Reads model.json and its weights; every weight file must be a regular file inside model.json's folder. */
export function readTfjsFiles(p: string, root?: Roots): TfjsFiles {
  const jsonPath = modelJsonPath(p, root);
  const { bytes: jsonBytes, real } = readContainedSync(jsonPath, { what: 'TensorFlow.js model file', root });
  let json: TfjsModelJson;
  try {
    json = JSON.parse(new TextDecoder().decode(jsonBytes)) as TfjsModelJson;
  } catch (e) {
    throw new UserError(
      `'${jsonPath}' is not valid JSON: ${(e as Error).message}`,
      'A TensorFlow.js model.json is written by model.save() or tensorflowjs_converter.',
    );
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json) || json.modelTopology === undefined) {
    throw new UserError(
      `'${jsonPath}' is not a TensorFlow.js model.json (no modelTopology).`,
      'Give the model.json written by model.save() or tensorflowjs_converter; for ONNX models give the .onnx file.',
    );
  }
  const manifest = json.weightsManifest ?? [];
  if (!Array.isArray(manifest)) throw new UserError(`'${jsonPath}': weightsManifest is not a list.`);
  const modelDir = path.dirname(real);

  const hash = createHash('sha256').update(jsonBytes);
  const weights = new Map<string, WeightTensor>();
  manifest.forEach((group, gi) => {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new UserError(`'${jsonPath}': weightsManifest[${gi}] needs 'paths' and 'weights' lists.`);
    }
    const parts = group.paths.map((shard) => {
      const bytes = readShard(shard, modelDir, jsonPath);
      hash.update(bytes);
      return bytes;
    });
    const total = parts.reduce((s, b) => s + b.length, 0);
    const stream = new Uint8Array(total);
    let at = 0;
    for (const b of parts) {
      stream.set(b, at);
      at += b.length;
    }
    for (const w of decodeWeightGroup(stream, group.weights, `${group.paths.join(', ')} (weightsManifest[${gi}] of '${jsonPath}')`)) {
      if (weights.has(w.name)) throw new UserError(`'${jsonPath}': the weight '${w.name}' is listed twice in weightsManifest.`);
      weights.set(w.name, w);
    }
  });
  return { jsonPath, json, weights, sha256: hash.digest('hex') };
}

/** One weight shard, read only when it lies inside the model's folder and is a regular file. */
function readShard(shard: unknown, modelDir: string, jsonPath: string): Uint8Array {
  const hint = 'For safety only regular files inside the model folder are read; keep the weight files next to model.json and name them by relative paths.';
  if (typeof shard !== 'string' || shard.length === 0)
    throw new UserError(`'${jsonPath}' names a weight file that is not a string (${JSON.stringify(shard)}).`);
  if (shard.includes('\0') || /^[a-z][a-z0-9+.-]*:\/\//i.test(shard)) {
    throw new UserError(`Weight file '${shard}' named in '${jsonPath}' is not a relative file path.`, hint);
  }
  if (path.isAbsolute(shard) || path.win32.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
    throw new UserError(`Weight file '${shard}' named in '${jsonPath}' leaves the model's folder (absolute path or '..').`, hint);
  }
  return readContainedSync(shard, { what: `weight file (named in '${jsonPath}')`, root: modelDir, base: modelDir }).bytes;
}
