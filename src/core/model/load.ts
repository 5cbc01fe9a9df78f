/**
 * Loading ONNX model files from disk. Every tensor stored as external data (graph initializers,
 * sparse initializers, Constant and other tensor attributes, and the same inside If/Loop/Scan
 * subgraphs and functions) is checked and read into the model before onnxruntime sees it, and only
 * from regular files inside the model's folder (src/core/paths.ts). The loaded model is checked
 * for what would otherwise surface later as a stack trace or as silently wrong numbers: no
 * outputs, absurd declared sizes, NaN or infinite weights.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { UserError } from '../errors';
import { openContained, readContainedSync, type OpenedFile, type Roots } from '../paths';
import { isTfjsModelPath, loadTfjsModel } from '../tfjs';
import {
  DataType,
  decodeModel,
  encodeModel,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from '../onnx/proto';

export interface LoadedModel {
  path: string;
  /** SHA-256 of the model file's bytes (external data files not included). */
  sha256: string;
  model: ModelProto;
  /** The model with every tensor inline, serialised: what onnxruntime sessions are built from. */
  bytes: Uint8Array;
}

export interface LoadModelOptions {
  /**
   * Folder(s) the model file itself must lie inside (symbolic links followed). Default: the
   * process-wide roots of setAllowedRoots (the compute process sets the workspace folders), else none.
   * External data must always lie inside the model's own folder.
   */
  root?: Roots;
  /** Load a model whose weights hold NaN or ±Infinity (default: a UserError naming the tensors). */
  allowNonFiniteWeights?: boolean;
}

/** The most values one sample of a model input or output may have (1 GiB of float32). */
export const MAX_SAMPLE_ELEMENTS = 2 ** 28;
/** protobuf cannot serialise a message of 2 GiB or more, so neither can the inlined model be. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;
const MAX_SUBGRAPH_DEPTH = 64;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function loadModel(modelPath: string, options: LoadModelOptions = {}): LoadedModel {
  // TensorFlow.js models (a model.json, or its folder) are converted to ONNX in memory (src/core/tfjs).
  if (isTfjsModelPath(modelPath)) {
    const converted = loadTfjsModel(modelPath, options.root);
    if (!options.allowNonFiniteWeights) assertFiniteWeights(converted.model, modelPath);
    return converted;
  }
  const { bytes: fileBytes, real } = readContainedSync(modelPath, { what: 'model file', root: options.root });
  let model: ModelProto;
  try {
    model = decodeModel(fileBytes);
  } catch (e) {
    throw new UserError(
      `'${modelPath}' is not a valid ONNX model (protobuf decoding failed: ${(e as Error).message}).`,
      'Export the model again, e.g. with torch.onnx.export or tf2onnx.',
    );
  }
  if (!model.graph || !model.graph.node?.length) {
    throw new UserError(`'${modelPath}' holds no ONNX graph (no nodes).`, 'Is this really an ONNX model file?');
  }
  if (!model.graph.output?.length) {
    throw new UserError(`'${modelPath}' declares no graph outputs, so there is nothing to evaluate.`, 'Export the model with its logits as a graph output.');
  }
  checkDeclaredShapes(model, modelPath);
  const inlined = inlineAllExternalData(model, path.dirname(real), modelPath, fileBytes.length);
  if (!options.allowNonFiniteWeights) assertFiniteWeights(model, modelPath);
  return { path: modelPath, sha256: sha256Hex(fileBytes), model, bytes: inlined ? encodeModel(model) : fileBytes };
}

// ─── Every tensor of a model ─────────────────────────────────────────────────────────────────────

interface SparseTensorProto {
  values?: TensorProto;
  indices?: TensorProto;
  dims?: number[];
}
type FullAttribute = AttributeProto & { sparseTensor?: SparseTensorProto; sparseTensors?: SparseTensorProto[] };
type FullGraph = GraphProto & { sparseInitializer?: SparseTensorProto[] };
interface FunctionLike {
  name?: string;
  node?: NodeProto[];
}
interface TrainingInfoLike {
  initialization?: GraphProto;
  algorithm?: GraphProto;
}

/** Calls `visit` for every TensorProto in the model, with where it sits (for messages). */
export function forEachTensor(model: ModelProto, visit: (t: TensorProto, where: string) => void): void {
  if (model.graph) visitGraph(model.graph, '', visit, 0);
  for (const f of (model.functions ?? []) as FunctionLike[]) visitNodes(f.node ?? [], `function '${f.name ?? '?'}' › `, visit, 0);
  for (const [i, ti] of ((model.trainingInfo ?? []) as TrainingInfoLike[]).entries()) {
    if (ti.initialization) visitGraph(ti.initialization, `training info ${i} initialization › `, visit, 0);
    if (ti.algorithm) visitGraph(ti.algorithm, `training info ${i} algorithm › `, visit, 0);
  }
}

function visitGraph(graph: FullGraph, prefix: string, visit: (t: TensorProto, where: string) => void, depth: number): void {
  if (depth > MAX_SUBGRAPH_DEPTH) throw new UserError(`The model nests subgraphs more than ${MAX_SUBGRAPH_DEPTH} deep (${prefix}…).`);
  for (const t of graph.initializer ?? []) visit(t, `${prefix}initializer '${t.name ?? ''}'`);
  for (const s of graph.sparseInitializer ?? []) visitSparse(s, `${prefix}sparse initializer '${s.values?.name ?? ''}'`, visit);
  visitNodes(graph.node ?? [], prefix, visit, depth);
}

function visitSparse(s: SparseTensorProto, where: string, visit: (t: TensorProto, where: string) => void): void {
  if (s.values) visit(s.values, `${where} (values)`);
  if (s.indices) visit(s.indices, `${where} (indices)`);
}

function visitNodes(nodes: NodeProto[], prefix: string, visit: (t: TensorProto, where: string) => void, depth: number): void {
  for (const node of nodes) {
    for (const a of (node.attribute ?? []) as FullAttribute[]) {
      const at = `${prefix}${node.opType ?? '?'} node '${node.name ?? ''}' attribute '${a.name ?? ''}'`;
      if (a.t) visit(a.t, at);
      a.tensors?.forEach((t, i) => visit(t, `${at}[${i}]`));
      if (a.sparseTensor) visitSparse(a.sparseTensor, at, visit);
      a.sparseTensors?.forEach((s, i) => visitSparse(s, `${at}[${i}]`, visit));
      if (a.g) visitGraph(a.g, `${at} › `, visit, depth + 1);
      a.graphs?.forEach((g, i) => visitGraph(g, `${at}[${i}] › `, visit, depth + 1));
    }
  }
}

// ─── External data ───────────────────────────────────────────────────────────────────────────────

const EXTERNAL = 1;

/** Bytes per element of the types external data can hold (4-bit types: 0.5). */
const ELEMENT_BYTES: Partial<Record<number, number>> = {
  [DataType.FLOAT]: 4,
  [DataType.UINT8]: 1,
  [DataType.INT8]: 1,
  [DataType.UINT16]: 2,
  [DataType.INT16]: 2,
  [DataType.INT32]: 4,
  [DataType.INT64]: 8,
  [DataType.BOOL]: 1,
  [DataType.FLOAT16]: 2,
  [DataType.DOUBLE]: 8,
  [DataType.UINT32]: 4,
  [DataType.UINT64]: 8,
  14: 8,
  15: 16,
  16: 2,
  17: 1,
  18: 1,
  19: 1,
  20: 1,
  21: 0.5,
  22: 0.5,
  23: 0.5,
};

/** Whether any tensor of the model still points at external data. */
export function hasExternalData(model: ModelProto): boolean {
  let found = false;
  forEachTensor(model, (t) => {
    if (t.dataLocation === EXTERNAL) found = true;
  });
  return found;
}

/** Reads every external tensor into raw_data; true when the model changed (and must be re-encoded). */
function inlineAllExternalData(model: ModelProto, modelDir: string, modelPath: string, fileSize: number): boolean {
  const files = new Map<string, OpenedFile>();
  let total = fileSize;
  let changed = false;
  try {
    forEachTensor(model, (t, where) => {
      if (t.dataLocation !== EXTERNAL) {
        // Without data_location EXTERNAL these entries mean nothing; dropped so no reader follows them.
        if (t.externalData?.length) {
          t.externalData = [];
          changed = true;
        }
        return;
      }
      const bytes = readExternal(t, where, modelDir, modelPath, files);
      total += bytes.length;
      if (total > MAX_MODEL_BYTES) {
        throw new UserError(
          `'${modelPath}' with its external data inlined would exceed 2 GiB, the largest model protobuf (and onnxruntime) can take from memory.`,
        );
      }
      t.rawData = bytes;
      delete t.dataLocation;
      t.externalData = [];
      changed = true;
    });
  } finally {
    for (const f of files.values()) f.close();
  }
  return changed;
}

/** A non-negative integer written in decimal, as external data offsets and lengths are. */
function byteCount(value: string | undefined, key: string, where: string, modelPath: string): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new UserError(
      `External data ${key} of ${where} in '${modelPath}' is ${JSON.stringify(value.slice(0, 40))}; expected a non-negative whole number of bytes.`,
      'The model file is corrupt or was edited by hand; export it again.',
    );
  }
  return n;
}

function readExternal(t: TensorProto, where: string, modelDir: string, modelPath: string, files: Map<string, OpenedFile>): Uint8Array {
  const info = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = info.get('location');
  if (!location)
    throw new UserError(
      `${capitalise(where)} in '${modelPath}' is marked as external data but names no location.`,
      'The model file is corrupt; export it again.',
    );
  if (path.isAbsolute(location) || path.win32.isAbsolute(location)) {
    throw new UserError(
      `External data of ${where} in '${modelPath}' names the absolute path '${location}'; only files inside the model's folder '${modelDir}' are read.`,
      'Keep the external data files next to the .onnx file and name them relative to it.',
    );
  }
  const offset = byteCount(info.get('offset'), 'offset', where, modelPath) ?? 0;
  const lengthGiven = byteCount(info.get('length'), 'length', where, modelPath);
  const dims = checkDims(t, where, modelPath);
  if (t.dataType === DataType.STRING)
    throw new UserError(`${capitalise(where)} in '${modelPath}' is a string tensor stored as external data, which ONNX does not allow.`);
  let file = files.get(location);
  if (!file) {
    file = openContained(location, {
      what: 'external data file',
      context: `of ${where} in '${modelPath}'`,
      root: modelDir,
      base: modelDir,
      rootName: "the model's folder",
    });
    files.set(location, file);
  }
  const length = lengthGiven ?? file.size - offset;
  if (offset > file.size || length < 0 || offset + length > file.size) {
    throw new UserError(
      `External data of ${where} in '${modelPath}' wants bytes ${offset}..${offset + (lengthGiven ?? 0)} of '${location}', which has ${file.size}.`,
      'The data file is truncated or belongs to another export of the model; export it again.',
    );
  }
  const per = ELEMENT_BYTES[t.dataType ?? 0];
  if (per !== undefined) {
    const expected = Math.ceil(dims.reduce((a, b) => a * b, 1) * per);
    if (expected !== length) {
      throw new UserError(
        `External data of ${where} in '${modelPath}' has ${length} bytes, but its shape [${dims.join(', ')}] needs ${expected}.`,
        'The data file belongs to another export of the model; export it again.',
      );
    }
  }
  return file.read(offset, length);
}

function checkDims(t: TensorProto, where: string, modelPath: string): number[] {
  const dims = t.dims ?? [];
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new UserError(
      `${capitalise(where)} in '${modelPath}' has shape [${dims.join(', ')}]; dimensions must be non-negative integers.`,
      'The model file is corrupt; export it again.',
    );
  }
  return dims;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// ─── Declared sizes ──────────────────────────────────────────────────────────────────────────────

/** Inputs and outputs whose declared size per sample no array could hold: a clear error, not a RangeError later. */
function checkDeclaredShapes(model: ModelProto, modelPath: string): void {
  const graph = model.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const io: [string, ValueInfoProto][] = [
    ...(graph.input ?? []).filter((v) => !inits.has(v.name)).map((v): [string, ValueInfoProto] => ['input', v]),
    ...(graph.output ?? []).map((v): [string, ValueInfoProto] => ['output', v]),
  ];
  for (const [kind, v] of io) {
    const dims = (v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue);
    const shown = `[${(v.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? '?').join(', ')}]`;
    if (dims.some((d) => d !== undefined && (!Number.isSafeInteger(d) || d > 2 ** 31 - 1))) {
      throw new UserError(
        `The ${kind} '${v.name}' of '${modelPath}' declares the shape ${shown}, with a dimension too large for any array.`,
        'The model file is corrupt or was edited by hand; export it again.',
      );
    }
    const perSample = dims.slice(1).reduce<number>((a, d) => a * (d !== undefined && d > 0 ? d : 1), 1);
    if (perSample > MAX_SAMPLE_ELEMENTS) {
      throw new UserError(
        `The ${kind} '${v.name}' of '${modelPath}' declares the shape ${shown}: ${perSample} values per sample, more than the ${MAX_SAMPLE_ELEMENTS} this tool can hold.`,
        'Image classifiers take images of at most a few megapixels; check the export.',
      );
    }
  }
}

// ─── Non-finite weights ──────────────────────────────────────────────────────────────────────────

export interface NonFiniteTensor {
  /** The tensor's name. */
  name: string;
  /** Where it sits: initializer, Constant attribute, subgraph … */
  where: string;
  /** How many of its values are NaN or ±Infinity. */
  count: number;
}

/** Floating-point tensors of the model (initializers, constants, subgraphs) that hold NaN or ±Infinity. */
export function nonFiniteInitializers(model: ModelProto): NonFiniteTensor[] {
  const found: NonFiniteTensor[] = [];
  forEachTensor(model, (t, where) => {
    const count = countNonFinite(t);
    if (count > 0) found.push({ name: t.name ?? '', where, count });
  });
  return found;
}

/** UserError naming the tensors (and how many values) when any weight is NaN or infinite. */
export function assertFiniteWeights(model: ModelProto, modelPath: string): void {
  const bad = nonFiniteInitializers(model);
  if (!bad.length) return;
  const total = bad.reduce((s, b) => s + b.count, 0);
  const list =
    bad
      .slice(0, 5)
      .map((b) => `${b.where} (${b.count})`)
      .join(', ') + (bad.length > 5 ? `, and ${bad.length - 5} more` : '');
  throw new UserError(
    `'${modelPath}' has ${total} NaN or infinite weight value(s) in ${bad.length} tensor(s): ${list}. Every result computed with it would be meaningless.`,
    'Fix the training run or the export (a diverged run, or a bad cast to float16) and export again.',
  );
}

function countNonFinite(t: TensorProto): number {
  if (t.dataLocation === EXTERNAL) return 0;
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  let bad = 0;
  switch (t.dataType) {
    case DataType.FLOAT: {
      if (!raw) return (t.floatData ?? []).reduce((n, v) => (Number.isFinite(v) ? n : n + 1), 0);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i + 4 <= raw.byteLength; i += 4) if ((view.getUint32(i, true) & 0x7f800000) === 0x7f800000) bad++;
      return bad;
    }
    case DataType.DOUBLE: {
      if (!raw) return (t.doubleData ?? []).reduce((n, v) => (Number.isFinite(v) ? n : n + 1), 0);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i + 8 <= raw.byteLength; i += 8) if (!Number.isFinite(view.getFloat64(i, true))) bad++;
      return bad;
    }
    case DataType.FLOAT16:
    case 16: {
      // BFLOAT16
      const mask = t.dataType === DataType.FLOAT16 ? 0x7c00 : 0x7f80;
      if (!raw) return (t.int32Data ?? []).reduce((n, v) => ((v & mask) === mask ? n + 1 : n), 0);
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i + 2 <= raw.byteLength; i += 2) if ((view.getUint16(i, true) & mask) === mask) bad++;
      return bad;
    }
    default:
      return 0;
  }
}

// ─── Classifier checks (for the evaluation's model loading) ────────────────────────────────────────

/**
 * The model's data inputs must be float32 (the tool feeds float images): an integer-input model
 * (token ids, uint8 images) gets a UserError instead of onnxruntime's type error mid-run.
 */
export function assertFloatInputs(loaded: LoadedModel): void {
  const graph = loaded.model.graph!;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  for (const v of (graph.input ?? []).filter((i) => !inits.has(i.name))) {
    const elem = v.type?.tensorType?.elemType;
    if (v.type && !v.type.tensorType) {
      throw new UserError(`Input '${v.name}' of '${loaded.path}' is not a tensor (a sequence, map or optional); an image classifier takes one float32 tensor.`);
    }
    if (elem !== undefined && elem !== DataType.FLOAT) {
      const name = (DataType[elem] ?? `type ${elem}`).toLowerCase();
      throw new UserError(
        `Input '${v.name}' of '${loaded.path}' takes ${name} values; Robustness Lab evaluates image classifiers with a float32 image input.`,
        /INT|BOOL/.test(DataType[elem] ?? '')
          ? 'Integer inputs (token ids, raw uint8 pixels) cannot be perturbed by gradient attacks; export the model with a float32 input and the cast inside the graph.'
          : 'Export the model with a float32 input.',
      );
    }
  }
}

/**
 * The classifier output must be [batch, classes] with at least two classes; returns the class
 * count. `shape` as found by shape inference (numbers, or names of symbolic dimensions).
 */
export function checkClassifierOutput(shape: readonly (number | string)[], output: string, modelPath: string): number {
  const shown = `[${shape.join(', ')}]`;
  if (shape.length !== 2) {
    throw new UserError(
      `Output '${output}' of '${modelPath}' has shape ${shown} (rank ${shape.length}); a classifier's output must be [batch, classes] (rank 2).`,
      shape.length > 2
        ? 'Segmentation and detection models are not supported; for a classifier with extra unit dimensions, add a Flatten or Squeeze before the output.'
        : 'Export the model with a batch dimension on its output.',
    );
  }
  const classes = shape[1];
  if (typeof classes !== 'number' || !Number.isSafeInteger(classes) || classes < 2) {
    throw new UserError(
      `Output '${output}' of '${modelPath}' has shape ${shown}; expected [batch, classes] with a fixed number of classes ≥ 2.`,
      'Export the model with a fixed number of classes.',
    );
  }
  if (classes > MAX_SAMPLE_ELEMENTS) throw new UserError(`Output '${output}' of '${modelPath}' declares ${classes} classes, more than this tool can hold.`);
  return classes;
}
