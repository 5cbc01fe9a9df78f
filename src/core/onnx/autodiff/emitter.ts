/**
 * Emits backward nodes in the form the target opset wants: the helpers here hide the op-version
 * differences (axes as attribute or input, Slice/Pad attributes before opsets 10/11, no Where
 * before 9, no Expand before 8) so that gradient rules are written once for every opset.
 */
import { floatAttr, GraphBuilder, type AttrValue } from '../builder';
import { DataType, type AttributeProto } from '../proto';
import { floatTensor } from '../tensor-proto';
import type { Dim } from '../../../protocol/model';

type Attrs = Record<string, AttrValue | AttributeProto>;

export class Emitter {
  private readonly scalarCache = new Map<number, string>();
  private readonly intCache = new Map<string, string>();
  private readonly shapeCache = new Map<string, string>();

  constructor(
    readonly b: GraphBuilder,
    readonly opset: number,
  ) {}

  op(type: string, inputs: string[], attrs: Attrs = {}): string {
    return this.b.op(type, inputs, attrs);
  }

  node(type: string, inputs: string[], attrs: Attrs, outputs: number | string[]): string[] {
    return this.b.node(type, inputs, attrs, outputs);
  }

  /** A float32 scalar constant (shared). */
  scalar(value: number): string {
    const key = Math.fround(value);
    let name = this.scalarCache.get(key);
    if (!name) this.scalarCache.set(key, (name = this.b.scalar(value, 'k')));
    return name;
  }

  floats(dims: number[], values: ArrayLike<number>, hint = 'w'): string {
    return this.b.floatConst(hint, dims, values);
  }

  /** An int64 constant (shared), 1-D unless `dims` says otherwise ([] for a scalar). */
  ints(values: number[], dims: number[] = [values.length]): string {
    const key = `${dims.join('x')}:${values.join(',')}`;
    let name = this.intCache.get(key);
    if (!name) this.intCache.set(key, (name = this.b.int64Const('i', values, dims)));
    return name;
  }

  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  neg(a: string): string {
    return this.op('Neg', [a]);
  }
  cast(x: string, to: DataType): string {
    return this.op('Cast', [x], { to });
  }

  /** Variadic sum of gradient contributions (all of the same shape). */
  sum(terms: string[]): string {
    return terms.length === 1 ? terms[0] : this.op('Sum', terms);
  }

  /** The runtime shape of a forward tensor (one Shape node per tensor). */
  shapeOf(t: string): string {
    let s = this.shapeCache.get(t);
    if (!s) this.shapeCache.set(t, (s = this.op('Shape', [t])));
    return s;
  }

  reshape(x: string, shape: string): string {
    return this.op('Reshape', [x, shape]);
  }

  /** ReduceSum/ReduceMean/ReduceMax over `axes` (non-empty): axes became an input in opset 13 (ReduceSum) and 18 (the others). */
  reduce(kind: 'ReduceSum' | 'ReduceMean' | 'ReduceMax', x: string, axes: number[], keepdims: boolean): string {
    const asInput = kind === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    const k = keepdims ? 1 : 0;
    return asInput ? this.op(kind, [x, this.ints(axes)], { keepdims: k }) : this.op(kind, [x], { axes, keepdims: k });
  }

  /** Unsqueeze/Squeeze: axes an input from opset 13. */
  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.op('Unsqueeze', [x, this.ints(axes)]) : this.op('Unsqueeze', [x], { axes });
  }

  squeeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.op('Squeeze', [x, this.ints(axes)]) : this.op('Squeeze', [x], { axes });
  }

  /** Slice with unit steps (attributes before opset 10, inputs from 10). */
  slice(x: string, starts: number[], ends: number[], axes: number[]): string {
    if (this.opset >= 10) return this.op('Slice', [x, this.ints(starts), this.ints(ends), this.ints(axes)]);
    return this.op('Slice', [x], { starts, ends, axes });
  }

  /** Constant-mode Pad; negative pads crop. Pads are an attribute before opset 11. */
  pad(x: string, pads: number[], value = 0): string {
    if (this.opset >= 11) return this.op('Pad', [x, this.ints(pads), this.scalar(value)], { mode: 'constant' });
    return this.op('Pad', [x], { mode: 'constant', pads, value: floatAttr('value', value) });
  }

  /**
   * where(cond, a, b) with b = 0 when omitted. Opsets before 9 have no Where: there the bool mask
   * is cast to float and multiplied in (b + (a - b)·mask).
   */
  where(cond: string, a: string, b?: string): string {
    if (this.opset >= 9) return this.op('Where', [cond, a, b ?? this.scalar(0)]);
    const m = this.cast(cond, DataType.FLOAT);
    return b === undefined ? this.mul(a, m) : this.add(b, this.mul(this.sub(a, b), m));
  }

  and(a: string, b: string): string {
    return this.op('And', [a, b]);
  }

  /**
   * Broadcasts `x` to the runtime shape of the forward tensor `ref` (x's dims are 1 or equal).
   * Expand exists from opset 8; opset 7 tiles by shape(ref) / shape(x).
   */
  expandLike(x: string, xRank: number, ref: string, refRank: number): string {
    if (this.opset >= 8) return this.op('Expand', [x, this.shapeOf(ref)]);
    const aligned =
      xRank < refRank
        ? this.unsqueeze(
            x,
            Array.from({ length: refRank - xRank }, (_, i) => i),
          )
        : x;
    return this.op('Tile', [aligned, this.div(this.shapeOf(ref), this.op('Shape', [aligned]))]);
  }

  /** Zeros shaped like the forward tensor `ref`. */
  zerosLike(ref: string, dims: Dim[]): string {
    if (this.opset >= 9) return this.op('ConstantOfShape', [this.shapeOf(ref)], { value: floatTensor('value', [1], [0]) });
    if (dims.every((d): d is number => typeof d === 'number')) {
      return this.floats(dims, new Float32Array(dims.reduce((a, b) => a * b, 1)), 'zeros');
    }
    // Opsets 7-8 with a symbolic dimension: 0·ref (ref is a finite activation).
    return this.mul(ref, this.scalar(0));
  }
}
