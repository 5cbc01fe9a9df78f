/**
 * ONNX models as plain objects: decoded from and encoded to protobuf with protobufjs and the ONNX
 * schema. Field names are protobufjs' camelCase of the schema's (op_type → opType). int64 values
 * become numbers: every int64 in a classifier (dims, axes, attribute ints) fits in 2^53.
 */
import protobuf from 'protobufjs';
import { ONNX_PROTO } from './schema';

export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
}

export enum AttributeType {
  UNDEFINED = 0,
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
  STRINGS = 8,
  TENSORS = 9,
  GRAPHS = 10,
}

export interface StringStringEntry {
  key?: string;
  value?: string;
}

export interface TensorProto {
  name?: string;
  dims?: number[];
  dataType?: number;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  uint64Data?: number[];
  stringData?: Uint8Array[];
  externalData?: StringStringEntry[];
  dataLocation?: number;
  docString?: string;
}

export interface AttributeProto {
  name?: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  refAttrName?: string;
  docString?: string;
}

export interface NodeProto {
  name?: string;
  opType?: string;
  domain?: string;
  input?: string[];
  output?: string[];
  attribute?: AttributeProto[];
  docString?: string;
}

export interface DimensionProto {
  dimValue?: number;
  dimParam?: string;
  denotation?: string;
}
export interface TypeProto {
  tensorType?: { elemType?: number; shape?: { dim?: DimensionProto[] } };
  denotation?: string;
}
export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  docString?: string;
}

export interface GraphProto {
  name?: string;
  node?: NodeProto[];
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  docString?: string;
}

export interface OperatorSetId {
  domain?: string;
  version?: number;
}

export interface ModelProto {
  irVersion?: number;
  opsetImport?: OperatorSetId[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  metadataProps?: StringStringEntry[];
  functions?: unknown[];
  trainingInfo?: unknown[];
}

let schemaRoot: protobuf.Root | undefined;
function onnxType(name: 'ModelProto' | 'TensorProto'): protobuf.Type {
  schemaRoot ??= protobuf.parse(ONNX_PROTO).root;
  return schemaRoot.lookupType(`onnx.${name}`);
}

const toObjectOptions: protobuf.IConversionOptions = { longs: Number, enums: Number, bytes: Uint8Array as never, defaults: false, arrays: false };

/** Decodes a serialised ModelProto. Throws protobufjs' error for bytes that are not one. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const type = onnxType('ModelProto');
  return type.toObject(type.decode(bytes), toObjectOptions) as ModelProto;
}

export function encodeModel(model: ModelProto): Uint8Array {
  const type = onnxType('ModelProto');
  return type.encode(type.fromObject(model as Record<string, unknown>)).finish();
}

/** Decodes a serialised TensorProto (the .pb files of the ONNX test data). */
export function decodeTensor(bytes: Uint8Array): TensorProto {
  const type = onnxType('TensorProto');
  return type.toObject(type.decode(bytes), toObjectOptions) as TensorProto;
}

/** The default-domain opset version the model imports (the one its op semantics follow). */
export function opsetVersion(model: ModelProto): number {
  const entry = model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry?.version ?? 1;
}
