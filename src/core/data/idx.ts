/** IDX (the MNIST file format): magic 00 00 <dtype code> <rank>, big-endian int32 dims, big-endian data. */
import { UserError } from '../errors';
import { IDX_DTYPES, hexPrefix } from './bytes';
import { decodeArray, type NdArray } from './ndarray';

export function parseIdx(bytes: Uint8Array, path: string): NdArray {
  const code = bytes[2];
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || !(code in IDX_DTYPES)) {
    throw new UserError(
      `${path} is not an IDX file: expected magic bytes 00 00 <dtype 08/09/0b/0c/0d/0e> <rank>, found ${hexPrefix(bytes, 4)}.`,
      'Give an IDX file such as t10k-images-idx3-ubyte(.gz), a .npy/.npz file, or an image folder.',
    );
  }
  const rank = bytes[3];
  const headerSize = 4 + 4 * rank;
  if (rank === 0 || bytes.length < headerSize) {
    throw new UserError(
      `${path} is truncated or not an IDX file: rank ${rank} needs a ${headerSize}-byte header, found ${bytes.length} bytes.`,
      'The file is incomplete or corrupt; download it again.',
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerSize);
  const shape = Array.from({ length: rank }, (_, i) => view.getInt32(4 + 4 * i, false));
  const dtype = IDX_DTYPES[code as keyof typeof IDX_DTYPES];
  return decodeArray(bytes, headerSize, shape, dtype, false, path);
}
