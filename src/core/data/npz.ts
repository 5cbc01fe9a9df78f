/** NumPy .npz archives: a zip (stored or deflated) of .npy files, one per array. */
import { unzipSync } from 'fflate';
import { UserError } from '../errors';
import { DEFAULT_MAX_DECOMPRESSED_BYTES, tooLarge } from './bytes';
import { decodeArray, type NdArray } from './ndarray';
import { parseNpyHeader, type NpyHeader } from './npy';

interface Entry extends NpyHeader {
  bytes: Uint8Array;
  where: string;
}

export interface NpzArrays {
  images: NdArray;
  imagesWhere: string;
  labels?: NdArray;
  labelsWhere?: string;
}

// Names tried, in order, when more than one array could hold the images / labels (test split first).
const IMAGE_NAMES = ['x', 'images', 'x_test', 'X', 'X_test', 'x_val', 'x_train', 'X_train', 'data', 'imgs', 'arr_0'];
const LABEL_NAMES = ['y', 'labels', 'y_test', 'Y', 'Y_test', 'y_val', 'y_train', 'Y_train', 'targets', 'label', 'arr_1'];

/**
 * `wantLabels` is false when labels come from a separate file, so the archive's labels are not even
 * looked for. The .npy entries together may expand to at most `maxBytes` (checked from the sizes
 * the archive declares before anything is inflated; an entry is never inflated beyond its declared size).
 */
export function readNpz(
  bytes: Uint8Array,
  path: string,
  imagesKey: string | undefined,
  labelsKey: string | undefined,
  wantLabels: boolean,
  maxBytes = DEFAULT_MAX_DECOMPRESSED_BYTES,
): NpzArrays {
  const entries = readEntries(bytes, path, maxBytes);
  const images = pick(entries, path, 'images', imagesKey, IMAGE_NAMES, (e) => e.shape.length === 3 || e.shape.length === 4);
  if (!images) throw noArray(entries, path, 'images', 'a 3-D or 4-D array', 'imagesKey');
  const labels = wantLabels ? pick(entries, path, 'labels', labelsKey, LABEL_NAMES, (e) => e.shape.length === 1 && !e.dtype.startsWith('float')) : undefined;
  return {
    images: decode(images),
    imagesWhere: images.where,
    labels: labels && decode(labels),
    labelsWhere: labels?.where,
  };
}

function readEntries(bytes: Uint8Array, path: string, maxBytes: number): Map<string, Entry> {
  let files: Record<string, Uint8Array>;
  let total = 0;
  try {
    files = unzipSync(bytes, {
      filter: (file) => {
        if (!file.name.endsWith('.npy')) return false;
        total += file.originalSize;
        if (total > maxBytes) throw tooLarge(`${path} [${file.name}]`, maxBytes, 'brings the archive to');
        return true;
      },
    });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(
      `${path} is not a readable .npz (zip) archive: ${(err as Error).message}.`,
      'The file is incomplete or corrupt; save it again with numpy.savez().',
    );
  }
  const entries = new Map<string, Entry>();
  for (const [name, data] of Object.entries(files)) {
    if (!name.endsWith('.npy')) continue;
    const where = `${path} [${name}]`;
    entries.set(name.slice(0, -'.npy'.length), { ...parseNpyHeader(data, where), bytes: data, where });
  }
  return entries;
}

/** Explicit key, else the only array that fits, else the first preferred name that fits; undefined when none fits. */
function pick(
  entries: Map<string, Entry>,
  path: string,
  what: string,
  key: string | undefined,
  preferred: string[],
  fits: (e: Entry) => boolean,
): Entry | undefined {
  if (key !== undefined) {
    const entry = entries.get(key);
    if (!entry)
      throw new UserError(`${path} has no array named '${key}' for the ${what}; found ${describe(entries)}.`, `Set ${what}Key to one of the names listed.`);
    return entry;
  }
  const candidates = [...entries].filter(([, e]) => fits(e));
  if (candidates.length <= 1) return candidates[0]?.[1];
  const named = preferred.map((n) => entries.get(n)).find((e) => e !== undefined && fits(e));
  if (named) return named;
  throw new UserError(
    `${path} has several arrays that could hold the ${what}: ${candidates.map(([n, e]) => `'${n}' [${e.shape.join(', ')}]`).join(', ')}.`,
    `Choose one with ${what}Key.`,
  );
}

function noArray(entries: Map<string, Entry>, path: string, what: string, expected: string, option: string): UserError {
  return new UserError(`${path}: expected ${expected} holding the ${what}, found ${describe(entries)}.`, `Set ${option} to the array holding the ${what}.`);
}

function describe(entries: Map<string, Entry>): string {
  if (entries.size === 0) return 'no .npy arrays';
  return [...entries].map(([n, e]) => `'${n}' ${e.dtype} [${e.shape.join(', ')}]`).join(', ');
}

function decode(e: Entry): NdArray {
  return decodeArray(e.bytes, e.dataOffset, e.shape, e.dtype, true, e.where);
}
