/**
 * What gradient rules work with while emitting: the opset-aware emitter, static shapes, folded
 * constants, which tensors need gradients, and the shared helpers for broadcasting and
 * per-axis linear maps.
 */
import type { Dim } from '../../../protocol/model';
import type { NodeProto } from '../proto';
import type { ConstantValues, ConstTensor } from './constants';
import type { Emitter } from './emitter';
import type { CheckInfo, State } from './state';

export class BackwardContext implements CheckInfo {
  readonly strict = true;

  constructor(
    readonly e: Emitter,
    private readonly shapes: Map<string, Dim[]>,
    private readonly consts: ConstantValues,
    private readonly states: Map<string, State>,
    readonly modelOpset: number,
  ) {}

  /** The opset the backward graph is emitted for (the model's, or the one it was raised to). */
  get opset(): number {
    return this.e.opset;
  }

  /** Does this tensor need a gradient (does it depend differentiably on the input)? */
  needs(name: string | undefined): boolean {
    return !!name && this.states.get(name) === 'diff';
  }

  shape(name: string): Dim[] | undefined {
    return this.shapes.get(name);
  }

  constant(name: string): ConstTensor | undefined {
    return this.consts.get(name);
  }

  /** Static dims of a tensor; the batch dimension may be a string. */
  dims(name: string): Dim[] {
    const d = this.shapes.get(name);
    if (!d) throw new Error(`autodiff: no shape known for tensor '${name}' (pass the shapes from inferShapes)`);
    return d;
  }

  /** Dims that must all be static numbers for the rule (`what` names them in the error). */
  staticDims(name: string, what: string): number[] {
    const d = this.dims(name);
    if (!d.every((x): x is number => typeof x === 'number')) throw new Error(`autodiff: ${what} of '${name}' must be static, got [${d}]`);
    return d;
  }

  /** An int64 shape constant for `dims`, using -1 for a single symbolic dim; undefined if there are more. */
  shapeConst(dims: Dim[]): string | undefined {
    const symbolic = dims.filter((d) => typeof d !== 'number').length;
    if (symbolic > 1) return undefined;
    return this.e.ints(dims.map((d) => (typeof d === 'number' ? d : -1)));
  }

  /** Reshapes `g` (same element count) to the shape of forward tensor `ref`. */
  reshapeLike(g: string, ref: string): string {
    return this.e.reshape(g, this.shapeConst(this.dims(ref)) ?? this.e.shapeOf(ref));
  }

  /**
   * Undoes numpy broadcasting: sums `g` (dims `gDims`) over the axes where forward tensor `ref`
   * was broadcast (missing leading axes, and size-1 axes the output stretched), then gives it
   * ref's shape.
   */
  reduceTo(g: string, gDims: Dim[], ref: string): string {
    const refDims = this.dims(ref);
    const off = gDims.length - refDims.length;
    const axes: number[] = [];
    for (let i = 0; i < gDims.length; i++) {
      if (i < off || (refDims[i - off] === 1 && gDims[i] !== 1)) axes.push(i);
    }
    if (axes.length === 0) return g;
    const reduced = this.e.reduce('ReduceSum', g, axes, true);
    return off > 0 ? this.reshapeLike(reduced, ref) : reduced;
  }

  /**
   * The adjoint of a linear map applied along one axis: the forward took x (length `cols` on
   * `axis`) to y = M·x (length `rows`), M row-major [rows, cols]; this returns Mᵀ·g along that
   * axis, as one MatMul (plus Transposes when the axis is neither of the last two).
   */
  axisAdjoint(g: string, rank: number, axis: number, m: Float32Array, rows: number, cols: number): string {
    const e = this.e;
    if (axis === rank - 1) return e.op('MatMul', [g, e.floats([rows, cols], m, 'map')]);
    const mt = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) mt[c * rows + r] = m[r * cols + c];
    if (axis === rank - 2) return e.op('MatMul', [e.floats([cols, rows], mt, 'mapT'), g]);
    const perm = Array.from({ length: rank }, (_, i) => (i === axis ? rank - 2 : i === rank - 2 ? axis : i));
    const moved = e.op('Transpose', [g], { perm });
    return e.op('Transpose', [e.op('MatMul', [e.floats([cols, rows], mt, 'mapT'), moved])], { perm });
  }

  /** Makes the forward node produce its optional output `index` and returns that tensor's name. */
  forwardOutput(node: NodeProto, index: number, hint: string): string {
    const outs = (node.output ??= []);
    while (outs.length <= index) outs.push('');
    if (!outs[index]) outs[index] = this.e.b.fresh(hint);
    return outs[index];
  }
}

/** A non-negative axis. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}
