/** Typed access to ONNX node attributes with the op's default when absent. */
import type { AttributeProto, NodeProto } from './proto';

function find(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = find(node, name);
  return a?.i ?? fallback;
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = find(node, name);
  return a?.f ?? fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  return find(node, name)?.ints;
}

export function attrFloats(node: NodeProto, name: string): number[] | undefined {
  return find(node, name)?.floats;
}

export function attrString(node: NodeProto, name: string, fallback: string): string {
  const s = find(node, name)?.s;
  return s ? new TextDecoder().decode(s) : fallback;
}

export function hasAttr(node: NodeProto, name: string): boolean {
  return find(node, name) !== undefined;
}

export function attrTensor(node: NodeProto, name: string) {
  return find(node, name)?.t;
}
