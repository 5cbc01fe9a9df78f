/** Loading ONNX model files from disk, with external data read only from inside the model's folder. */
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors';
import { decodeModel, encodeModel, type ModelProto, type TensorProto } from './proto';

export interface LoadedModel {
  path: string;
  /** SHA-256 of the model file's bytes (external data files not included). */
  sha256: string;
  model: ModelProto;
  /** The model with every tensor inline, serialised: what onnxruntime sessions are built from. */
  bytes: Uint8Array;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function loadModel(modelPath: string): LoadedModel {
  let fileBytes: Uint8Array;
  try {
    fileBytes = readFileSync(modelPath);
  } catch (e) {
    throw new UserError(`Cannot read the model file '${modelPath}': ${(e as Error).message}`, 'Check the path; models are .onnx files.');
  }
  let model: ModelProto;
  try {
    model = decodeModel(fileBytes);
  } catch (e) {
    throw new UserError(`'${modelPath}' is not a valid ONNX model (protobuf decoding failed: ${(e as Error).message}).`, 'Export the model again, e.g. with torch.onnx.export or tf2onnx.');
  }
  if (!model.graph || !model.graph.node?.length) {
    throw new UserError(`'${modelPath}' holds no ONNX graph (no nodes).`, 'Is this really an ONNX model file?');
  }
  const external = (model.graph.initializer ?? []).filter((t) => t.dataLocation === 1);
  for (const t of external) inlineExternalData(t, path.dirname(path.resolve(modelPath)), modelPath);
  return { path: modelPath, sha256: sha256Hex(fileBytes), model, bytes: external.length ? encodeModel(model) : fileBytes };
}

/** Reads a tensor's external data into rawData. The data file must lie inside the model's folder. */
function inlineExternalData(t: TensorProto, modelDir: string, modelPath: string): void {
  const info = Object.fromEntries((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = info.location;
  if (!location) throw new UserError(`Initializer '${t.name}' in '${modelPath}' is marked external but names no location.`);
  const target = path.resolve(modelDir, location);
  let realTarget: string;
  try {
    realTarget = realpathSync(target);
  } catch {
    throw new UserError(`External data file '${location}' of initializer '${t.name}' does not exist (looked in '${modelDir}').`, 'Keep the external data files next to the .onnx file.');
  }
  const rel = path.relative(realpathSync(modelDir), realTarget);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new UserError(
      `External data path '${location}' of initializer '${t.name}' in '${modelPath}' leaves the model's folder.`,
      'For safety only files inside the model folder are read; move the data file next to the model and fix its location.',
    );
  }
  const offset = Number(info.offset ?? 0);
  const size = statSync(realTarget).size;
  const length = info.length !== undefined ? Number(info.length) : size - offset;
  if (offset + length > size) {
    throw new UserError(`External data of '${t.name}' wants bytes ${offset}..${offset + length} of '${location}', which has ${size}.`);
  }
  t.rawData = new Uint8Array(readFileSync(realTarget).subarray(offset, offset + length));
  t.dataLocation = 0;
  t.externalData = [];
}
