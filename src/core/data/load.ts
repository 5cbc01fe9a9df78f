/** loadDataset: finds the format, reads images and labels, checks they agree and applies `limit`. */
import { createHash, type Hash } from 'node:crypto';
import { UserError } from '../errors';
import { isContainedDirectory } from '../paths';
import { decompressionLimit, gunzipIfNeeded, hexPrefix, readHashed, sniffFormat, type ReadLimits } from './bytes';
import { loadFolder } from './folder';
import { parseIdx } from './idx';
import { toImages, type ImageArray } from './images';
import { labelsFromArray, loadLabelFile } from './labels';
import { countNonFinite } from './ndarray';
import { parseNpy } from './npy';
import { readNpz } from './npz';
import type { DatasetInfo, DatasetSpec, RawImageSet } from './types';

/** What a format reader returns: images plus, when the source has them, labels. */
interface Loaded extends ImageArray {
  format: DatasetInfo['format'];
  labels?: Int32Array;
  labelsWhere?: string; // the file (and array) the labels came from, for messages
  classNames?: string[];
}

/**
 * Every file is read as a regular file inside `spec.root` (or the process-wide roots), symbolic
 * links followed; compressed data is bounded by `spec.maxDecompressedBytes`; float images holding
 * NaN or ±Infinity are refused unless `spec.allowNonFinite`.
 */
export async function loadDataset(spec: DatasetSpec): Promise<RawImageSet> {
  const limit = checkLimit(spec.limit);
  const limits: ReadLimits = { root: spec.root, maxDecompressedBytes: decompressionLimit(spec) };
  const hash = createHash('sha256');
  const { real, directory } = await isDirectory(spec.path, limits);
  const loaded = directory ? await readFolder(spec, real, limit, hash, limits) : await readImageFile(spec, hash, limits);
  if (spec.labelsPath !== undefined) {
    loaded.labels = await loadLabelFile(spec.labelsPath, hash, limits);
    loaded.labelsWhere = spec.labelsPath;
  }
  checkLabelCount(loaded, spec.path);
  const kept = takeFirst(loaded, limit);
  if (!spec.allowNonFinite) checkFinite(kept, spec.path);
  return finish(kept, spec, hash.digest('hex'));
}

/** NaN or infinite pixels would give meaningless accuracies without any error: refused, with the count. */
function checkFinite(loaded: Loaded, path: string): void {
  if (loaded.pixels instanceof Uint8Array) return;
  const { count, first } = countNonFinite(loaded.pixels);
  if (count === 0) return;
  const perSample = loaded.height * loaded.width * loaded.channels;
  throw new UserError(
    `${path} holds ${count} NaN or infinite value(s) in the ${loaded.count} sample(s) used (the first in sample ${Math.floor(first / perSample)}); every number computed from them would be meaningless.`,
    'Clean the data (e.g. numpy.nan_to_num) and save it again, or accept it knowingly with allowNonFinite (--allow-nonfinite).',
  );
}

function checkLimit(limit: number | undefined): number {
  if (limit === undefined) return Infinity;
  if (!Number.isInteger(limit) || limit <= 0) {
    throw new UserError(`Sample limit must be a positive integer; found ${limit}.`, 'Omit the limit to use every sample.');
  }
  return limit;
}

async function isDirectory(path: string, limits: ReadLimits): Promise<{ real: string; directory: boolean }> {
  try {
    return await isContainedDirectory(path, 'dataset', limits.root);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`Cannot open dataset ${path}: ${(err as Error).message}`, 'Give an IDX, .npy or .npz file, or a folder with one sub-folder per class.');
  }
}

async function readFolder(spec: DatasetSpec, real: string, limit: number, hash: Hash, limits: ReadLimits): Promise<Loaded> {
  if (spec.labelsPath !== undefined) {
    throw new UserError(
      `${spec.path} is an image folder, whose labels come from its sub-folder names; a labels file (${spec.labelsPath}) cannot also be used.`,
      'Remove the labels file option.',
    );
  }
  rejectNpzKeys(spec, 'an image folder');
  // Read through its real path: every image must then lie inside the folder itself.
  const folder = await loadFolder(real, limit, hash, limits);
  return { ...folder, format: 'folder', layout: 'NHWC', labelsWhere: spec.path };
}

async function readImageFile(spec: DatasetSpec, hash: Hash, limits: ReadLimits): Promise<Loaded> {
  const { path } = spec;
  const maxBytes = decompressionLimit(limits);
  const bytes = gunzipIfNeeded(await readHashed(path, hash, 'dataset', limits), path, maxBytes);
  const layout = spec.layout ?? 'auto';
  switch (sniffFormat(bytes)) {
    case 'idx':
      rejectNpzKeys(spec, 'an IDX file');
      // IDX has no layout convention of its own; rank-4 IDX image files are N,H,W,C.
      return { ...toImages(parseIdx(bytes, path), layout === 'auto' ? 'NHWC' : layout, path), format: 'idx' };
    case 'npy':
      rejectNpzKeys(spec, 'a .npy file');
      return { ...toImages(parseNpy(bytes, path), layout, path), format: 'npy' };
    case 'npz': {
      const npz = readNpz(bytes, path, spec.imagesKey, spec.labelsKey, spec.labelsPath === undefined, maxBytes);
      const labels = npz.labels && labelsFromArray(npz.labels, npz.labelsWhere!);
      return { ...toImages(npz.images, layout, npz.imagesWhere), format: 'npz', labels, labelsWhere: npz.labelsWhere };
    }
    default:
      throw new UserError(
        `${path} is not a recognised dataset file: expected an IDX, .npy or .npz file (optionally gzipped), found bytes ${hexPrefix(bytes)}.`,
        'Single images are not datasets: put them in a folder with one sub-folder per class.',
      );
  }
}

/** Keys only mean something for .npz archives; silently ignoring them would hide a mistake. */
function rejectNpzKeys(spec: DatasetSpec, what: string): void {
  const key = spec.imagesKey !== undefined ? 'imagesKey' : spec.labelsKey !== undefined ? 'labelsKey' : undefined;
  if (key) throw new UserError(`${spec.path} is ${what}; ${key} only applies to .npz archives.`, `Remove ${key}.`);
}

function checkLabelCount(loaded: Loaded, path: string): void {
  if (!loaded.labels || loaded.labels.length === loaded.count) return;
  throw new UserError(
    `Images ${path} have ${loaded.count} samples but labels ${loaded.labelsWhere} have ${loaded.labels.length}; expected one label per image.`,
    'Check that the labels file belongs to the images file (e.g. test images with test labels).',
  );
}

/** Keeps the first `limit` samples; copies so the full file's buffer can be freed. */
function takeFirst(loaded: Loaded, limit: number): Loaded {
  if (loaded.count <= limit) return loaded;
  const size = loaded.height * loaded.width * loaded.channels;
  return {
    ...loaded,
    count: limit,
    pixels: loaded.pixels.slice(0, limit * size),
    labels: loaded.labels?.slice(0, limit),
  };
}

function finish(loaded: Loaded, spec: DatasetSpec, sha256: string): RawImageSet {
  const { pixels, layout, count, height, width, channels, labels } = loaded;
  const info: DatasetInfo = {
    format: loaded.format,
    path: spec.path,
    ...(spec.labelsPath !== undefined && { labelsPath: spec.labelsPath }),
    count,
    height,
    width,
    channels,
    dtype: pixels instanceof Uint8Array ? 'uint8' : 'float32',
    sha256,
    ...(loaded.classNames && { classNames: loaded.classNames }),
  };
  return { pixels, layout, count, height, width, channels, ...(labels && { labels }), info };
}
