/**
 * Node attributes formatted for display in the graph editor (kernel_shape [5, 5], auto_pad NOTSET,
 * a tensor as its type and shape). Values from a workspace model are hostile input: long lists and
 * strings are cut, tensors and subgraphs are described, never dumped.
 */
import { dataTypeName } from '../core/onnx/tensor-proto';
import { AttributeType, type AttributeProto, type NodeProto } from '../core/onnx/proto';
import type { NodeAttributes } from '../protocol/graph-view';

const MAX_LIST = 16;
const MAX_TEXT = 200;

function text(bytes: Uint8Array | undefined): string {
  const s = bytes ? new TextDecoder().decode(bytes) : '';
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function list(values: readonly (number | string)[]): string {
  const shown = values.slice(0, MAX_LIST).map((v) => (typeof v === 'number' ? formatNumber(v) : v));
  return `[${shown.join(', ')}${values.length > MAX_LIST ? `, … (${values.length} in all)` : ''}]`;
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
}

function formatAttribute(a: AttributeProto): string {
  // Zero and empty values may be left out of the decoded message: the declared type says what it was.
  switch (a.type) {
    case AttributeType.FLOAT:
      return formatNumber(a.f ?? 0);
    case AttributeType.INT:
      return String(a.i ?? 0);
    case AttributeType.STRING:
      return text(a.s);
    case AttributeType.INTS:
      return list(a.ints ?? []);
    case AttributeType.FLOATS:
      return list(a.floats ?? []);
  }
  if (a.t) return `tensor ${dataTypeName(a.t.dataType).toLowerCase()} [${(a.t.dims ?? []).join(', ')}]`;
  if (a.g) return `subgraph (${a.g.node?.length ?? 0} nodes)`;
  if (a.s) return text(a.s);
  if (a.ints?.length) return list(a.ints);
  if (a.floats?.length) return list(a.floats);
  if (a.strings?.length) return list(a.strings.map(text));
  if (a.tensors?.length) return `${a.tensors.length} tensors`;
  if (a.graphs?.length) return `${a.graphs.length} subgraphs`;
  if (a.f !== undefined) return formatNumber(a.f);
  if (a.i !== undefined) return String(a.i);
  if (a.refAttrName) return `= ${a.refAttrName}`;
  return '';
}

/** Each node's attributes, in node order. */
export function nodeAttributes(nodes: readonly NodeProto[]): NodeAttributes[] {
  return nodes.map((node) => {
    const out: NodeAttributes = {};
    for (const a of node.attribute ?? []) if (a.name) out[a.name] = formatAttribute(a);
    return out;
  });
}
