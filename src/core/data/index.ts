/** The dataset layer: load image sets from IDX / NPY / NPZ / image folders and preprocess them for a model. */
export type { DatasetInfo, DatasetSpec, InputSpec, Layout, PreprocessOptions, RawImageSet } from './types';
export { loadDataset } from './load';
export { preprocess } from './preprocess';
export { inferInputSpec } from './input-spec';
