/** Reading files (hashed for provenance), gzip unwrapping and format sniffing by magic bytes. */
import { readFile } from 'node:fs/promises';
import type { Hash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../errors';

/** Reads a whole file and feeds its bytes to `hash`, so the dataset hash covers exactly what was read. */
export async function readHashed(path: string, hash: Hash, what: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new UserError(
      `Cannot read ${what} file ${path}: ${(err as Error).message}`,
      'Check the path (relative paths are resolved against the working directory).',
    );
  }
  hash.update(bytes);
  return bytes;
}

export function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

const GZIP_MAGIC = [0x1f, 0x8b];
export const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04]; // "PK\3\4"
/** IDX dtype codes (third magic byte); all IDX data is big-endian. */
export const IDX_DTYPES = { 0x08: 'uint8', 0x09: 'int8', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64' } as const;

/** Gzip is detected by content, not by file name, so renamed or uncompressed downloads both work. */
export function gunzipIfNeeded(bytes: Uint8Array, path: string): Uint8Array {
  if (!startsWith(bytes, GZIP_MAGIC)) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (err) {
    throw new UserError(
      `${path} starts like a gzip file but cannot be decompressed (${(err as Error).message}).`,
      'The download is probably incomplete or corrupt; fetch the file again.',
    );
  }
}

export type FileFormat = 'idx' | 'npy' | 'npz';

export function sniffFormat(bytes: Uint8Array): FileFormat | undefined {
  if (startsWith(bytes, NPY_MAGIC)) return 'npy';
  if (startsWith(bytes, ZIP_MAGIC)) return 'npz';
  if (bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] in IDX_DTYPES && bytes[3] > 0) return 'idx';
  return undefined;
}

/** First bytes in hex, to show what was found instead of a known magic number. */
export function hexPrefix(bytes: Uint8Array, n = 8): string {
  return Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty file)';
}
