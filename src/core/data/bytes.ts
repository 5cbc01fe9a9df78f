/** Reading files (hashed for provenance), gzip unwrapping and format sniffing by magic bytes. */
import type { Hash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { UserError } from '../errors';
import { readContained, type Roots } from '../paths';

/** Default bound on what one compressed file (gzip, zip entry, PNG/JPEG) may expand to: 2 GiB. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 2 * 1024 ** 3;

/** Limits every reader of the dataset layer applies. */
export interface ReadLimits {
  /** Folder(s) every file must lie inside (default: the process-wide roots of setAllowedRoots, else none). */
  root?: Roots;
  /** Bound on decompressed bytes per file (gzip, NPZ, images); default DEFAULT_MAX_DECOMPRESSED_BYTES. */
  maxDecompressedBytes?: number;
}

export function decompressionLimit(limits: ReadLimits | undefined): number {
  const max = limits?.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
  if (!(max > 0) || !Number.isFinite(max)) throw new UserError(`The decompression limit must be a positive number of bytes; found ${max}.`);
  return Math.floor(max);
}

export function tooLarge(where: string, limit: number, what = 'decompresses to'): UserError {
  return new UserError(
    `${where} ${what} more than ${formatBytes(limit)}, the limit for one file.`,
    'If the file is genuine, raise the limit (--max-decompressed-mb, or maxDecompressedBytes).',
  );
}

export function formatBytes(n: number): string {
  return n >= 1024 ** 3 ? `${+(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${+(n / 1024 ** 2).toFixed(2)} MiB` : `${n} bytes`;
}

/**
 * Reads a whole file (a regular file inside the allowed roots, see src/core/paths.ts) and feeds its
 * bytes to `hash`, so the dataset hash covers exactly what was read.
 */
export async function readHashed(path: string, hash: Hash, what: string, limits?: ReadLimits): Promise<Uint8Array> {
  const { bytes } = await readContained(path, { what: `${what} file`, root: limits?.root });
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

/**
 * Gzip is detected by content, not by file name, so renamed or uncompressed downloads both work.
 * The output is bounded by `maxBytes` (a gzip bomb is a UserError, not an out-of-memory crash).
 */
export function gunzipIfNeeded(bytes: Uint8Array, path: string, maxBytes = DEFAULT_MAX_DECOMPRESSED_BYTES): Uint8Array {
  if (!startsWith(bytes, GZIP_MAGIC)) return bytes;
  try {
    return gunzipSync(bytes, { maxOutputLength: Math.min(maxBytes, 2 ** 32 - 1) });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw tooLarge(path, maxBytes);
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
