/** Public types of the dataset layer. */

export type Layout = 'NCHW' | 'NHWC';

export interface DatasetSpec {
  /** An IDX file (raw or gzip), a .npy, a .npz, or a folder with one sub-folder per class. */
  path: string;
  /** IDX labels (raw or gzip), .npy, or a text file with one integer per line. */
  labelsPath?: string;
  /** Keep the first N samples (deterministic). Larger than the count = use all. */
  limit?: number;
  /** How a 4-D array is stored; auto = NHWC if the last dim is 1, 3 or 4 and dim 1 is not, else NCHW. */
  layout?: Layout | 'auto';
  /** NPZ: which array holds the images (default: the only 3-D/4-D array, or one named x/images/x_test/...). */
  imagesKey?: string;
  /** NPZ: which array holds the labels (default: the only 1-D integer array, or y/labels/y_test/...). */
  labelsKey?: string;
  /**
   * Folder(s) the dataset and labels must lie inside, symbolic links followed (default: the
   * process-wide roots of setAllowedRoots in src/core/paths.ts, which the compute process sets to
   * the workspace folders; none in the CLI).
   */
  root?: string | string[];
  /**
   * Bound on what one compressed file may expand to (gzip, each NPZ entry together, each PNG/JPEG,
   * and the decoded image folder as a whole). Default 2 GiB (DEFAULT_MAX_DECOMPRESSED_BYTES).
   */
  maxDecompressedBytes?: number;
  /** Accept float images holding NaN or ±Infinity (default: a UserError with the count and file). */
  allowNonFinite?: boolean;
}

export interface DatasetInfo {
  format: 'idx' | 'npy' | 'npz' | 'folder';
  path: string;
  labelsPath?: string;
  /** Number of samples after `limit`. */
  count: number;
  height: number;
  width: number;
  channels: number;
  dtype: 'uint8' | 'float32';
  /** Hex SHA-256 of the bytes of every file read (images then labels, in a fixed order). */
  sha256: string;
  /** Folder datasets: sorted sub-folder names; class i = classNames[i]. */
  classNames?: string[];
}

export interface RawImageSet {
  /** count * H * W * C values, in `layout`. */
  pixels: Uint8Array | Float32Array;
  layout: Layout;
  count: number;
  height: number;
  width: number;
  channels: number;
  /** One label per sample, when the dataset has labels. */
  labels?: Int32Array;
  info: DatasetInfo;
}

/** The image input a model expects (batch dimension excluded). */
export interface InputSpec {
  layout: Layout;
  channels: number;
  height: number;
  width: number;
}

export interface PreprocessOptions {
  /** Multiplier applied first; default 1/255 for uint8 data, 1 for float32 data. */
  scale?: number;
  /** Per-channel (or single) mean subtracted after scaling. */
  mean?: number[];
  /** Per-channel (or single) standard deviation divided by after subtracting the mean. */
  std?: number[];
}
