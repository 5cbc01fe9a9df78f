/** Label files: IDX (raw or gzip), .npy, or text with one integer per line. */
import type { Hash } from 'node:crypto';
import { UserError } from '../errors';
import { decompressionLimit, gunzipIfNeeded, readHashed, sniffFormat, type ReadLimits } from './bytes';
import { parseIdx } from './idx';
import type { NdArray } from './ndarray';
import { parseNpy } from './npy';

/** `limits`: the folders the file must lie inside and the decompression bound (see ReadLimits). */
export async function loadLabelFile(path: string, hash: Hash, limits?: ReadLimits): Promise<Int32Array> {
  const bytes = gunzipIfNeeded(await readHashed(path, hash, 'labels', limits), path, decompressionLimit(limits));
  switch (sniffFormat(bytes)) {
    case 'idx':
      return labelsFromArray(parseIdx(bytes, path), path);
    case 'npy':
      return labelsFromArray(parseNpy(bytes, path), path);
    case 'npz':
      throw new UserError(
        `${path} is an .npz archive; as a labels file expected IDX, .npy or text with one integer per line.`,
        'Pass the .npz as the dataset path and choose its labels array with labelsKey.',
      );
    default:
      return parseTextLabels(bytes, path);
  }
}

/** Accepts shape (N) or (N, 1); `where` names the file (and array) for errors. */
export function labelsFromArray(arr: NdArray, where: string): Int32Array {
  const { shape } = arr;
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) {
    throw new UserError(
      `${where} has shape [${shape.join(', ')}]; expected one integer label per sample, shape (N).`,
      shape.length === 2 ? 'One-hot labels must be converted with array.argmax(axis=1).' : undefined,
    );
  }
  return checkedLabels(arr.data, where);
}

export function parseTextLabels(bytes: Uint8Array, path: string): Int32Array {
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/);
  const values: number[] = [];
  lines.forEach((line, i) => {
    const text = line.trim();
    if (text === '') return; // blank lines (typically the last one) carry no label
    if (!/^[+-]?\d+(\.0*)?$/.test(text)) {
      throw new UserError(
        `${path} line ${i + 1} (sample ${values.length}): expected an integer label, found "${text.slice(0, 40)}".`,
        'A text labels file holds one non-negative integer class index per line.',
      );
    }
    values.push(Number(text));
  });
  return checkedLabels(values, path);
}

/** Labels index the model's output, so they must be non-negative integers. */
function checkedLabels(values: ArrayLike<number>, where: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new UserError(
        `${where}: label of sample ${i} is ${v}; expected a non-negative integer class index.`,
        'Labels must be class indices 0..K-1 in the order of the model outputs.',
      );
    }
    out[i] = v;
  }
  return out;
}
