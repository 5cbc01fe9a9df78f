/** Reading a float tensor from a file: NumPy .npy (float32/float64) or a serialised ONNX TensorProto (.pb). */
import { readFileSync } from 'node:fs';
import { UserError } from '../errors';
import type { Tensor } from '../tensor';
import { parseNpy } from './npy';
import { DataType, decodeTensor, type TensorProto } from '../onnx/proto';
import { dataTypeName, tensorValues } from '../onnx/tensor-proto';

export type FloatTensor = Tensor;

export function loadInputTensor(path: string): FloatTensor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`Cannot read the input tensor file '${path}': ${(e as Error).message}`);
  }
  if (path.toLowerCase().endsWith('.npy')) {
    const arr = parseNpy(bytes, path);
    if (arr.dtype !== 'float32' && arr.dtype !== 'float64') {
      throw new UserError(`${path} holds ${arr.dtype} values; the input must be float32.`, 'Save it with numpy.save(path, x.astype(numpy.float32)).');
    }
    return { data: arr.data as Float32Array, dims: arr.shape };
  }
  if (path.toLowerCase().endsWith('.pb')) {
    let t: TensorProto;
    try {
      t = decodeTensor(bytes);
    } catch (e) {
      throw new UserError(
        `${path} is not a serialised ONNX TensorProto: ${(e as Error).message}`,
        'Write it with onnx.numpy_helper.from_array(x).SerializeToString().',
      );
    }
    if (t.dataType !== DataType.FLOAT && t.dataType !== DataType.DOUBLE) {
      throw new UserError(`${path} holds a ${dataTypeName(t.dataType)} tensor; the input must be float32.`);
    }
    const values = tensorValues(t);
    return { data: values instanceof Float32Array ? values : Float32Array.from(values), dims: (t.dims ?? []).map(Number) };
  }
  throw new UserError(`Input tensor file '${path}' must be a .npy or an ONNX TensorProto .pb file.`);
}
