/**
 * Floating-point operations per sample of an ONNX graph's Conv, ConvTranspose, Gemm and MatMul
 * nodes (2 per multiply-add), from shapes probed with onnxruntime. Elementwise ops are left out:
 * they are a rounding error next to these on a CNN.
 */
import { inferShapes, type Dim } from '../src/core/runtime/shapes';
import { encodeModel, type ModelProto } from '../src/core/onnx/proto';
import { sizeOf } from '../src/core/tensor';

const perSample = (dims: Dim[] | undefined): number => sizeOf((dims ?? []).slice(1).map((d) => (typeof d === 'number' ? d : 1)));

export async function flopsPerSample(model: ModelProto): Promise<number> {
  const bytes = encodeModel(model);
  const shapes = await inferShapes({ path: '(bench)', sha256: '', model, bytes });
  let flops = 0;
  for (const node of model.graph!.node ?? []) {
    const [a, w] = node.input ?? [];
    const weight = shapes.get(w) ?? [];
    const kernel = sizeOf(weight.slice(2) as number[]);
    switch (node.opType) {
      case 'Conv': // out[C_out, H, W] each sums C_in/group × kernel products
        flops += 2 * perSample(shapes.get(node.output![0])) * (Number(weight[1]) * kernel);
        break;
      case 'ConvTranspose': // each input element scatters into C_out/group × kernel outputs
        flops += 2 * perSample(shapes.get(a)) * (Number(weight[1]) * kernel);
        break;
      case 'Gemm':
      case 'MatMul': {
        const out = perSample(shapes.get(node.output![0]));
        const inner = Number((shapes.get(a) ?? []).at(-1));
        flops += 2 * out * inner;
        break;
      }
    }
  }
  return flops;
}
