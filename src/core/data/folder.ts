/**
 * Image folders: one sub-folder per class (sorted by name = classes 0..K-1), PNG/JPEG files sorted by name inside.
 * Every image is resized (bilinear) to the size of the first image, so the set has one H×W; a folder mixing
 * gray and colour images becomes RGB (gray replicated). Alpha is dropped.
 */
import type { Hash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { decode as decodeJpegData } from 'jpeg-js';
import { PNG } from 'pngjs';
import { UserError } from '../errors';
import { decompressionLimit, readHashed, tooLarge, type ReadLimits } from './bytes';
import { resizeBilinear } from './resize';

export interface FolderImages {
  pixels: Uint8Array; // NHWC
  count: number;
  height: number;
  width: number;
  channels: number;
  labels: Int32Array;
  classNames: string[];
}

interface Decoded {
  file: string;
  height: number;
  width: number;
  channels: 1 | 3;
  data: Uint8Array; // interleaved H×W×channels
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;
// Code-point order (like Python's sorted()), so class indices do not depend on the locale.
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Reads the first `limit` images in (class, file name) order. Symbolic links among the class
 * folders and images are skipped (like anything that is not a folder or a regular file), and every
 * image is read as a regular file inside `root`. Each image may decode to at most an eighth of the
 * decompression limit (at least 256 MiB), and the whole set to the limit.
 */
export async function loadFolder(root: string, limit: number, hash: Hash, limits?: ReadLimits): Promise<FolderImages> {
  const maxBytes = decompressionLimit(limits);
  // One image may decode to an eighth of the limit (256 MiB by default: ~67 megapixels of RGBA).
  const perImage = Math.min(maxBytes, Math.max(256 * 1024 ** 2, Math.floor(maxBytes / 8)));
  const classNames = await listClasses(root);
  const files: { path: string; rel: string; label: number }[] = [];
  for (const [label, name] of classNames.entries()) {
    for (const file of await listImages(join(root, name))) files.push({ path: join(root, name, file), rel: `${name}/${file}`, label });
  }
  if (files.length === 0) {
    throw new UserError(
      `${root} has class sub-folders (${classNames.join(', ')}) but no .png/.jpg/.jpeg images in them.`,
      'Put the images of class k in the k-th sub-folder (sub-folders sorted by name).',
    );
  }
  const used = files.slice(0, limit);
  const decoded: Decoded[] = [];
  let total = 0;
  for (const f of used) {
    hash.update(`${f.rel}\0`); // the path is the label, so it belongs to the dataset's identity
    const image = decodeImage(await readHashed(f.path, hash, 'image', { root }), f.path, perImage);
    total += image.data.length;
    if (total > maxBytes) throw tooLarge(`The image folder ${root} (up to ${f.rel})`, maxBytes, 'decodes to');
    decoded.push(image);
  }
  const { height, width } = decoded[0];
  const channels = decoded.some((im) => im.channels === 3) ? 3 : 1;
  if (decoded.length * height * width * channels > maxBytes) throw tooLarge(`The image folder ${root}`, maxBytes, 'decodes to');
  return { ...assemble(decoded), labels: Int32Array.from(used, (f) => f.label), classNames };
}

async function listDir(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new UserError(
      `Cannot list the image folder ${dir}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message}.`,
    );
  }
}

async function listClasses(root: string): Promise<string[]> {
  const entries = await listDir(root);
  const classes = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(byName);
  if (classes.length === 0) {
    const loose = entries.filter((e) => e.isFile() && IMAGE_EXT.test(e.name)).length;
    throw new UserError(
      `${root} has no class sub-folders; expected one sub-folder per class, found ${loose} image file(s) directly inside.`,
      'Arrange the images as <folder>/<class name>/<image>.png; classes are numbered in sorted name order.',
    );
  }
  return classes;
}

async function listImages(dir: string): Promise<string[]> {
  const entries = await listDir(dir);
  return entries
    .filter((e) => e.isFile() && IMAGE_EXT.test(e.name))
    .map((e) => e.name)
    .sort(byName);
}

function decodeImage(bytes: Uint8Array, file: string, maxBytes: number): Decoded {
  try {
    return /\.png$/i.test(file) ? decodePng(bytes, file, maxBytes) : decodeJpeg(bytes, file, maxBytes);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`Cannot decode image ${file}: ${(err as Error).message}.`, 'The file is corrupt or not the format its extension says; re-export it.');
  }
}

/** PNG's IHDR (right after the 8-byte signature) declares width and height; checked before decoding. */
function checkPngSize(bytes: Uint8Array, file: string, maxBytes: number): void {
  if (bytes.length < 24) return; // pngjs reports the truncation
  const view = new DataView(bytes.buffer, bytes.byteOffset, 24);
  const width = view.getUint32(16, false),
    height = view.getUint32(20, false);
  if (width * height * 4 > maxBytes) throw tooLarge(`${file} (${width}×${height} pixels)`, maxBytes, 'decodes to');
}

function decodePng(bytes: Uint8Array, file: string, maxBytes: number): Decoded {
  checkPngSize(bytes, file, maxBytes);
  const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  // pngjs always returns RGBA; colour types 0 and 4 are gray (without/with alpha).
  const channels = png.colorType === 0 || png.colorType === 4 ? 1 : 3;
  return { file, width: png.width, height: png.height, channels, data: fromRgbx(png.data, 4, channels) };
}

function decodeJpeg(bytes: Uint8Array, file: string, maxBytes: number): Decoded {
  const img = decodeJpegData(bytes, {
    useTArray: true,
    formatAsRGBA: false,
    // jpeg-js refuses larger images itself (before allocating them).
    maxResolutionInMP: Math.max(1, maxBytes / 3 / 1e6),
    maxMemoryUsageInMB: Math.max(64, Math.ceil((maxBytes * 2) / 1024 ** 2)),
  });
  // jpeg-js expands gray JPEGs to RGB, so the component count comes from the frame header.
  const channels = jpegComponents(bytes) === 1 ? 1 : 3;
  return { file, width: img.width, height: img.height, channels, data: fromRgbx(img.data, 3, channels) };
}

/** Keeps the first `channels` of every `stride` bytes (gray = R of a replicated RGB, RGB = drop alpha). */
function fromRgbx(src: Uint8Array, stride: number, channels: 1 | 3): Uint8Array {
  const n = src.length / stride;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = src[i * stride + c];
  return out;
}

/** Number of colour components in the JPEG's start-of-frame segment, or undefined if none is found. */
function jpegComponents(bytes: Uint8Array): number | undefined {
  let i = 2; // after SOI (FF D8)
  while (i + 9 < bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1];
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) return bytes[i + 9]; // FF Cx, length(2), precision(1), height(2), width(2), components(1)
    if (marker === 0xff)
      i += 1; // fill byte
    else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8))
      i += 2; // markers without a length
    else i += 2 + ((bytes[i + 2] << 8) | bytes[i + 3]);
  }
  return undefined;
}

/** Stacks the images as NHWC at the first image's size and the widest channel count. */
function assemble(images: Decoded[]): Omit<FolderImages, 'labels' | 'classNames'> {
  const { height, width } = images[0];
  const channels = images.some((im) => im.channels === 3) ? 3 : 1;
  const size = height * width * channels;
  const pixels = new Uint8Array(images.length * size);
  images.forEach((im, i) => pixels.set(toShape(im, height, width, channels), i * size));
  return { pixels, count: images.length, height, width, channels };
}

function toShape(im: Decoded, height: number, width: number, channels: number): Uint8Array {
  let data = im.data;
  if (im.height !== height || im.width !== width) {
    const resized = resizeBilinear(data, im.height, im.width, im.channels, height, width);
    data = Uint8Array.from(resized, (v) => Math.round(v)); // stays in 0..255: bilinear is a convex combination
  }
  if (im.channels === channels) return data;
  const out = new Uint8Array(height * width * channels); // gray → RGB
  for (let p = 0; p < height * width; p++) out.fill(data[p], p * channels, (p + 1) * channels);
  return out;
}
