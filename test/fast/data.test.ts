import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { UserError } from '../../src/core/errors';
import { inferInputSpec, loadDataset, preprocess, type InputSpec, type RawImageSet } from '../../src/core/data';

// ---------- helpers: build files of every format in a temp dir ----------

const dir = mkdtempSync(join(tmpdir(), 'robustness-lab-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;

function write(name: string, bytes: Uint8Array | string): string {
  const path = join(dir, `${fileCounter++}-${name}`);
  writeFileSync(path, bytes);
  return path;
}

type Kind = 'u1' | 'i4' | 'i8' | 'f4' | 'f8';
const SIZE: Record<Kind, number> = { u1: 1, i4: 4, i8: 8, f4: 4, f8: 8 };

function encode(kind: Kind, values: number[], littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(values.length * SIZE[kind]);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    const o = i * SIZE[kind];
    if (kind === 'u1') view.setUint8(o, v);
    else if (kind === 'i4') view.setInt32(o, v, littleEndian);
    else if (kind === 'i8') view.setBigInt64(o, BigInt(v), littleEndian);
    else if (kind === 'f4') view.setFloat32(o, v, littleEndian);
    else view.setFloat64(o, v, littleEndian);
  });
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => Array.from(p)));
}

const IDX_CODE = { u1: 0x08, i4: 0x0c, f4: 0x0d } as const;
function idx(kind: keyof typeof IDX_CODE, shape: number[], values: number[]): Uint8Array {
  const header = new Uint8Array(4 + 4 * shape.length);
  const view = new DataView(header.buffer);
  header.set([0, 0, IDX_CODE[kind], shape.length]);
  shape.forEach((d, i) => view.setInt32(4 + 4 * i, d, false));
  return concat(header, encode(kind, values, false));
}

function npy(descr: string, shape: number[], values: number[], { version = 1, fortran = false }: { version?: 1 | 2 | 3; fortran?: boolean } = {}): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const lenSize = version === 1 ? 2 : 4;
  const prefix = 8 + lenSize;
  const headerLen = Math.ceil((prefix + dict.length + 1) / 64) * 64 - prefix; // numpy pads to 64 bytes
  const pre = new Uint8Array(prefix);
  pre.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(pre.buffer);
  if (lenSize === 2) view.setUint16(8, headerLen, true);
  else view.setUint32(8, headerLen, true);
  const header = new TextEncoder().encode(dict.padEnd(headerLen - 1, ' ') + '\n');
  const kind = descr.slice(1) as Kind;
  return concat(pre, header, encode(kind, values, descr[0] !== '>'));
}

function png(width: number, height: number, rgba: number[], colorType: 0 | 2 | 6): Uint8Array {
  const image = new PNG({ width, height });
  image.data = Buffer.from(rgba);
  return PNG.sync.write(image, { colorType });
}

/** Gray values → RGBA with R=G=B, alpha 255 (pngjs' input format). */
const grayRgba = (values: number[]) => values.flatMap((v) => [v, v, v, 255]);
const range = (n: number, f: (i: number) => number = (i) => i) => Array.from({ length: n }, (_, i) => f(i));

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `index ${i}: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

/** Asserts a UserError whose message contains every fragment (file names, expected and found values). */
async function assertUserError(run: () => unknown, fragments: (string | number)[]): Promise<void> {
  await assert.rejects(
    async () => run(),
    (err: unknown) => {
      assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
      for (const f of fragments) assert.ok(err.message.includes(String(f)), `message lacks "${f}":\n${err.message}`);
      return true;
    },
  );
}

function rawSet(pixels: number[], layout: 'NCHW' | 'NHWC', count: number, height: number, width: number, channels: number): RawImageSet {
  const data = Float32Array.from(pixels);
  return {
    pixels: data,
    layout,
    count,
    height,
    width,
    channels,
    info: { format: 'npy', path: 'mem.npy', count, height, width, channels, dtype: 'float32', sha256: '' },
  };
}
const spec = (layout: 'NCHW' | 'NHWC', channels: number, height: number, width: number): InputSpec => ({ layout, channels, height, width });

// ---------- IDX ----------

const idxPixels = range(12, (i) => i * 20); // 3 images of 2x2
const idxImages = idx('u1', [3, 2, 2], idxPixels);
const idxLabels = idx('u1', [3], [7, 0, 2]);

test('IDX raw: pixels, labels, info and hash', async () => {
  const path = write('images-idx3-ubyte', idxImages);
  const labelsPath = write('labels-idx1-ubyte', idxLabels);
  const set = await loadDataset({ path, labelsPath });
  assert.deepEqual(Array.from(set.pixels), idxPixels);
  assert.ok(set.pixels instanceof Uint8Array);
  assert.deepEqual(Array.from(set.labels!), [7, 0, 2]);
  assert.deepEqual([set.count, set.height, set.width, set.channels], [3, 2, 2, 1]);
  const sha = createHash('sha256').update(idxImages).update(idxLabels).digest('hex');
  assert.deepEqual(set.info, { format: 'idx', path, labelsPath, count: 3, height: 2, width: 2, channels: 1, dtype: 'uint8', sha256: sha });
});

test('IDX gzip is detected by content, not by name; hash covers the compressed bytes', async () => {
  const gz = gzipSync(idxImages);
  const path = write('images-no-gz-suffix', gz);
  const labelsPath = write('labels.gz', gzipSync(idxLabels));
  const set = await loadDataset({ path, labelsPath });
  assert.deepEqual(Array.from(set.pixels), idxPixels);
  assert.deepEqual(Array.from(set.labels!), [7, 0, 2]);
  assert.equal(set.info.sha256, createHash('sha256').update(gz).update(gzipSync(idxLabels)).digest('hex'));
});

test('IDX rank 4 is N,H,W,C and preprocesses to NCHW', async () => {
  // one 1x2 RGB image: pixels (0,51,102) and (153,204,255)
  const set = await loadDataset({ path: write('rgb.idx', idx('u1', [1, 1, 2, 3], [0, 51, 102, 153, 204, 255])) });
  assert.deepEqual([set.layout, set.height, set.width, set.channels], ['NHWC', 1, 2, 3]);
  assertClose(preprocess(set, spec('NCHW', 3, 1, 2)), [0, 0.6, 0.2, 0.8, 0.4, 1]);
});

test('IDX float32 images keep their values (default scale 1)', async () => {
  const set = await loadDataset({ path: write('float.idx', idx('f4', [1, 1, 2], [0.25, -1.5])) });
  assert.equal(set.info.dtype, 'float32');
  assertClose(preprocess(set, spec('NCHW', 1, 1, 2)), [0.25, -1.5]);
});

// ---------- NPY ----------

test('NPY uint8 NHWC (auto layout) → NCHW scaled by 1/255', async () => {
  // 1 image 2x2x3, value = 10 * (pixel index) + channel
  const values = range(12, (i) => 10 * Math.floor(i / 3) + (i % 3));
  const set = await loadDataset({ path: write('x.npy', npy('|u1', [1, 2, 2, 3], values)) });
  assert.deepEqual([set.info.format, set.layout, set.channels, set.height, set.width], ['npy', 'NHWC', 3, 2, 2]);
  assertClose(
    preprocess(set, spec('NCHW', 3, 2, 2)),
    [0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32].map((v) => v / 255),
  );
});

test('NPY float32 NCHW (auto layout) → NHWC unscaled', async () => {
  const values = range(12); // 1 image, 3 channels of 2x2: channel c holds 4c..4c+3
  const set = await loadDataset({ path: write('x.npy', npy('<f4', [1, 3, 2, 2], values)) });
  assert.deepEqual([set.layout, set.channels, set.info.dtype], ['NCHW', 3, 'float32']);
  assertClose(preprocess(set, spec('NHWC', 3, 2, 2)), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
});

test('NPY explicit layout overrides auto', async () => {
  // shape (1, 3, 1, 3) is NCHW by auto; forcing NHWC reads H=3, W=1, C=3
  const set = await loadDataset({ path: write('x.npy', npy('<f4', [1, 3, 1, 3], range(9))), layout: 'NHWC' });
  assert.deepEqual([set.layout, set.height, set.width, set.channels], ['NHWC', 3, 1, 3]);
});

test('NPY v2 and v3 headers; float64 becomes float32; 3-D arrays are gray', async () => {
  for (const version of [2, 3] as const) {
    const set = await loadDataset({ path: write('x.npy', npy('<f8', [2, 1, 2], [0.5, 1, 1.5, 2], { version })) });
    assert.ok(set.pixels instanceof Float32Array);
    assert.deepEqual(Array.from(set.pixels), [0.5, 1, 1.5, 2]);
    assert.deepEqual([set.count, set.height, set.width, set.channels], [2, 1, 2, 1]);
  }
});

// ---------- NPZ ----------

const npzX = npy('|u1', [2, 1, 2], [1, 2, 3, 4]);
const npzY = npy('<i8', [2], [5, 6]);

test('NPZ stored and deflated with x/y arrays', async () => {
  for (const level of [0, 6] as const) {
    const path = write('data.npz', zipSync({ 'x.npy': npzX, 'y.npy': npzY, 'meta.npy': npy('<f4', [3], [1, 2, 3]) }, { level }));
    const set = await loadDataset({ path });
    assert.equal(set.info.format, 'npz');
    assert.deepEqual(Array.from(set.pixels), [1, 2, 3, 4]);
    assert.deepEqual(Array.from(set.labels!), [5, 6]);
  }
});

test('NPZ with explicit keys among several candidates', async () => {
  const path = write(
    'data.npz',
    zipSync({
      'train_imgs.npy': npy('|u1', [1, 1, 1], [9]),
      'test_imgs.npy': npzX,
      'a.npy': npy('<i4', [1], [1]),
      'b.npy': npy('<i4', [2], [3, 0]),
    }),
  );
  const set = await loadDataset({ path, imagesKey: 'test_imgs', labelsKey: 'b' });
  assert.deepEqual(Array.from(set.pixels), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(set.labels!), [3, 0]);
  await assertUserError(() => loadDataset({ path }), [path, "'train_imgs' [1, 1, 1]", "'test_imgs' [2, 1, 2]", 'imagesKey']);
  await assertUserError(() => loadDataset({ path, imagesKey: 'nope' }), [path, "'nope'", "'test_imgs' uint8 [2, 1, 2]"]);
});

test('NPZ labels are replaced by a labels file', async () => {
  const path = write('data.npz', zipSync({ 'x.npy': npzX, 'y.npy': npzY }));
  const set = await loadDataset({ path, labelsPath: write('labels.txt', '1\n2\n') });
  assert.deepEqual(Array.from(set.labels!), [1, 2]);
});

// ---------- labels ----------

test('labels as NPY (int64, uint8), IDX and text', async () => {
  const path = write('images.idx', idxImages);
  const cases: [string, Uint8Array | string][] = [
    ['labels.npy', npy('<i8', [3], [4, 0, 9])],
    ['labels.npy', npy('|u1', [3, 1], [4, 0, 9])],
    ['labels.idx', idx('i4', [3], [4, 0, 9])],
    ['labels.txt', '4\r\n0\r\n9\r\n\r\n'],
  ];
  for (const [name, bytes] of cases) {
    const set = await loadDataset({ path, labelsPath: write(name, bytes) });
    assert.deepEqual(Array.from(set.labels!), [4, 0, 9], name);
  }
});

// ---------- image folders ----------

function makeFolder(): string {
  const root = mkdtempSync(join(dir, 'folder-'));
  for (const d of ['a_gray', 'b_rgb', 'c_jpeg', '.hidden']) mkdirSync(join(root, d));
  writeFileSync(join(root, 'a_gray', '0.png'), png(2, 2, grayRgba([10, 20, 30, 40]), 0));
  writeFileSync(join(root, 'b_rgb', '0.png'), png(2, 2, [255, 0, 0, 128, 0, 255, 0, 255, 0, 0, 255, 0, 1, 2, 3, 255], 6));
  // 4x4 RGB with R = 10x + 40y, G = 5, B = 200; downscaled to 2x2 it averages 2x2 blocks
  const big = range(16).flatMap((p) => [10 * (p % 4) + 40 * Math.floor(p / 4), 5, 200, 255]);
  writeFileSync(join(root, 'b_rgb', '1.PNG'), png(4, 4, big, 2));
  writeFileSync(join(root, 'b_rgb', 'notes.txt'), 'not an image');
  const flat = range(64).flatMap(() => [200, 100, 50, 255]);
  writeFileSync(join(root, 'c_jpeg', 'img.jpg'), encodeJpeg({ width: 8, height: 8, data: Buffer.from(flat) }, 100).data);
  writeFileSync(join(root, '.hidden', 'x.png'), png(1, 1, [0, 0, 0, 255], 6));
  return root;
}

test('folder: classes, gray→RGB, alpha dropped, resize to the first image, JPEG', async () => {
  const root = makeFolder();
  const set = await loadDataset({ path: root });
  assert.equal(set.info.format, 'folder');
  assert.deepEqual(set.info.classNames, ['a_gray', 'b_rgb', 'c_jpeg']);
  assert.deepEqual(Array.from(set.labels!), [0, 1, 1, 2]);
  assert.deepEqual([set.count, set.height, set.width, set.channels, set.layout], [4, 2, 2, 3, 'NHWC']);
  const sample = (n: number) => Array.from(set.pixels.subarray(n * 12, (n + 1) * 12));
  assert.deepEqual(sample(0), [10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]);
  assert.deepEqual(sample(1), [255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3]);
  assert.deepEqual(sample(2), [25, 5, 200, 45, 5, 200, 105, 5, 200, 125, 5, 200]);
  assertClose(sample(3), [200, 100, 50, 200, 100, 50, 200, 100, 50, 200, 100, 50], 3); // JPEG is lossy
  assert.equal(set.info.sha256, (await loadDataset({ path: root })).info.sha256, 'hash is deterministic');
  assert.match(set.info.sha256, /^[0-9a-f]{64}$/);
});

test('folder of gray PNGs has 1 channel; limit reads the first files in order', async () => {
  const root = mkdtempSync(join(dir, 'gray-'));
  for (const [cls, file, v] of [
    ['x', 'b.png', 2],
    ['x', 'a.png', 1],
    ['y', 'c.png', 3],
  ] as const) {
    mkdirSync(join(root, cls), { recursive: true });
    writeFileSync(join(root, cls, file), png(1, 1, grayRgba([v]), 0));
  }
  const all = await loadDataset({ path: root });
  assert.deepEqual([all.channels, Array.from(all.pixels), Array.from(all.labels!)], [1, [1, 2, 3], [0, 0, 1]]);
  const two = await loadDataset({ path: root, limit: 2 });
  assert.deepEqual([two.count, Array.from(two.pixels), Array.from(two.labels!)], [2, [1, 2], [0, 0]]);
  assert.deepEqual(two.info.classNames, ['x', 'y']);
});

// ---------- preprocessing ----------

test('bilinear resize 2x2 → 4x4 matches the half-pixel (align_corners=False) hand computation', () => {
  const out = preprocess(rawSet([0, 4, 8, 12], 'NCHW', 1, 2, 2, 1), spec('NCHW', 1, 4, 4));
  assertClose(out, [0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12]);
});

test('bilinear resize 4x4 → 2x2 averages 2x2 blocks; 3x1 → 1x1 takes the centre', () => {
  assertClose(preprocess(rawSet(range(16), 'NCHW', 1, 4, 4, 1), spec('NCHW', 1, 2, 2)), [2.5, 4.5, 10.5, 12.5]);
  assertClose(preprocess(rawSet([1, 2, 7], 'NCHW', 1, 3, 1, 1), spec('NCHW', 1, 1, 1)), [2]);
});

test('channel conversions: 1→3 replicate, 3→1 BT.601 luma, 4→3 drop alpha', () => {
  assertClose(preprocess(rawSet([1, 2], 'NCHW', 1, 1, 2, 1), spec('NCHW', 3, 1, 2)), [1, 2, 1, 2, 1, 2]);
  assertClose(preprocess(rawSet([10, 20, 30, 0, 0, 100], 'NHWC', 1, 1, 2, 3), spec('NCHW', 1, 1, 2)), [0.299 * 10 + 0.587 * 20 + 0.114 * 30, 11.4], 1e-4);
  assertClose(preprocess(rawSet([1, 2, 3, 99, 4, 5, 6, 99], 'NHWC', 1, 1, 2, 4), spec('NHWC', 3, 1, 2)), [1, 2, 3, 4, 5, 6]);
});

test('mean/std per channel and single; explicit scale', () => {
  const raw = rawSet([2, 4, 6, 8, 10, 12], 'NCHW', 1, 1, 2, 3);
  const out = preprocess(raw, spec('NCHW', 3, 1, 2), { scale: 0.5, mean: [1, 2, 3], std: [1, 2, 4] });
  assertClose(out, [0, 1, 0.5, 1, 0.5, 0.75]); // (x*0.5 - m)/s
  assertClose(preprocess(raw, spec('NCHW', 3, 1, 2), { mean: [1], std: [2] }), [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
});

test('preprocess keeps sample order over a batch and applies limit', async () => {
  const path = write('images.idx', idxImages);
  const set = await loadDataset({ path, labelsPath: write('l.idx', idxLabels), limit: 2 });
  assert.deepEqual([set.count, set.info.count, Array.from(set.labels!)], [2, 2, [7, 0]]);
  assertClose(preprocess(set, spec('NCHW', 1, 2, 2), { scale: 1 }), idxPixels.slice(0, 8));
  assert.equal((await loadDataset({ path, limit: 100 })).count, 3);
});

// ---------- inferInputSpec ----------

test('inferInputSpec reads NCHW / NHWC shapes with a dynamic batch', () => {
  assert.deepEqual(inferInputSpec(['N', 1, 28, 28]), { layout: 'NCHW', channels: 1, height: 28, width: 28 });
  assert.deepEqual(inferInputSpec([-1, 224, 224, 3]), { layout: 'NHWC', channels: 3, height: 224, width: 224 });
  assert.deepEqual(inferInputSpec([1, 3, 4, 4]), { layout: 'NCHW', channels: 3, height: 4, width: 4 });
});

test('inferInputSpec errors name the shape and what was expected', async () => {
  await assertUserError(() => inferInputSpec(['N', 784]), ['[N, 784]', 'rank 2', 'rank-4']);
  await assertUserError(() => inferInputSpec(['N', 3, 'h', 224]), ['[N, 3, h, 224]', "symbolic ('h')", 'height']);
  await assertUserError(() => inferInputSpec([1, 28, 28, 28]), ['[1, 28, 28, 28]', 'found 28 and 28']);
});

// ---------- error paths ----------

test('error: truncated IDX and NPY files', async () => {
  const idxPath = write('short.idx', idxImages.subarray(0, idxImages.length - 1));
  await assertUserError(() => loadDataset({ path: idxPath }), [idxPath, 'truncated', '[3, 2, 2]', '12 data bytes', 'only 11 bytes']);
  const full = npy('<f4', [1, 2, 2], [1, 2, 3, 4]);
  const npyPath = write('short.npy', full.subarray(0, full.length - 4));
  await assertUserError(() => loadDataset({ path: npyPath }), [npyPath, 'truncated', '16 data bytes', 'only 12 bytes']);
});

test('error: wrong magic', async () => {
  const path = write('garbage.bin', 'hello world');
  await assertUserError(() => loadDataset({ path }), [path, 'IDX, .npy or .npz', '68 65 6c 6c']);
});

test('error: label count mismatch names both files and counts', async () => {
  const path = write('images.idx', idxImages);
  const labelsPath = write('labels.txt', '1\n2\n');
  await assertUserError(() => loadDataset({ path, labelsPath }), [path, labelsPath, '3 samples', 'have 2']);
});

test('error: negative or non-integer labels give the sample index', async () => {
  const path = write('images.idx', idxImages);
  const npyLabels = write('labels.npy', npy('<i4', [3], [1, -2, 0]));
  await assertUserError(() => loadDataset({ path, labelsPath: npyLabels }), [npyLabels, 'sample 1', '-2', 'non-negative integer']);
  const txt = write('labels.txt', '0\n\n1\n2.5\n');
  await assertUserError(() => loadDataset({ path, labelsPath: txt }), [txt, 'line 4', 'sample 2', '"2.5"']);
});

test('error: bad and big-endian dtypes', async () => {
  const bad = write('half.npy', npy('<f2', [1, 1, 1], []));
  await assertUserError(() => loadDataset({ path: bad }), [bad, "'<f2'", '<f4']);
  const big = write('big.npy', npy('>f4', [1, 1, 1], [1]));
  await assertUserError(() => loadDataset({ path: big }), [big, 'big-endian', "'>f4'", "'<f4'"]);
  const ints = write('ints.npy', npy('<i4', [1, 1, 1], [1]));
  await assertUserError(() => loadDataset({ path: ints }), [ints, 'int32', 'uint8', 'float32']);
});

test('error: fortran order', async () => {
  const path = write('f.npy', npy('<f4', [1, 1, 1], [1], { fortran: true }));
  await assertUserError(() => loadDataset({ path }), [path, 'Fortran', 'fortran_order False']);
});

test('error: channel mismatch names the dataset and both channel counts', async () => {
  const path = write('two-channels.npy', npy('<f4', [1, 1, 1, 2], [1, 2]));
  const set = await loadDataset({ path, layout: 'NHWC' });
  await assertUserError(() => preprocess(set, spec('NCHW', 3, 1, 1)), [path, '2 channel(s)', 'expects 3']);
});

test('error: mean/std length mismatch', async () => {
  const raw = rawSet([1, 2, 3], 'NCHW', 1, 1, 1, 3);
  await assertUserError(() => preprocess(raw, spec('NCHW', 3, 1, 1), { mean: [0, 0] }), ['mean has 2 values', '3 channel(s)', 'expected 1 or 3']);
  await assertUserError(() => preprocess(raw, spec('NCHW', 3, 1, 1), { std: [1, 1, 1, 1] }), ['std has 4 values', 'expected 1 or 3']);
});

test('error: empty folders', async () => {
  const noClasses = mkdtempSync(join(dir, 'empty-'));
  await assertUserError(() => loadDataset({ path: noClasses }), [noClasses, 'one sub-folder per class', 'found 0 image']);
  const noImages = mkdtempSync(join(dir, 'noimg-'));
  mkdirSync(join(noImages, 'cat'));
  await assertUserError(() => loadDataset({ path: noImages }), [noImages, '(cat)', 'no .png/.jpg/.jpeg images']);
});

test('error: limit must be positive; missing dataset path', async () => {
  const path = write('images.idx', idxImages);
  await assertUserError(() => loadDataset({ path, limit: 0 }), ['positive integer', 'found 0']);
  const missing = join(dir, 'does-not-exist.idx');
  await assertUserError(() => loadDataset({ path: missing }), [missing]);
});

// ---------- the demo data set (created by another part of the project) ----------

const demoImages = join(process.cwd(), 'demo/data/t10k-images-idx3-ubyte.gz');
test('demo Fashion-MNIST subset loads with its labels', { skip: !existsSync(demoImages) && 'demo data absent' }, async () => {
  const set = await loadDataset({ path: demoImages, labelsPath: join(process.cwd(), 'demo/data/t10k-labels-idx1-ubyte.gz') });
  assert.deepEqual([set.count, set.height, set.width, set.channels], [1000, 28, 28, 1]);
  assert.equal(set.labels!.length, 1000);
  assert.ok(set.labels!.every((l) => l >= 0 && l < 10));
});
