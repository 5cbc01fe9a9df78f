/** Test and reference sets as the model sees them: loaded, preprocessed for its input, labels checked. */
import { inferInputSpec, loadDataset, preprocess } from '../data';
import type { RawImageSet } from '../data/types';
import { UserError } from '../errors';
import type { DatasetDescription } from '../../protocol/run-result';
import type { EvaluationConfig } from '../../protocol/experiment';
import type { ClassifierModel } from './model-session';

/** Images preprocessed for the model, with labels. */
export interface PreparedData {
  x: Float32Array;
  labels: Int32Array;
  count: number;
  description: DatasetDescription;
  /** The undefended model's clean predictions, once computed. */
  cleanPredictions?: Int32Array;
}

export interface DataSource extends Pick<EvaluationConfig, 'maxDecompressedBytes' | 'allowNonFinite'> {
  data: string;
  labels?: string;
  limit?: number;
  preprocessing?: EvaluationConfig['preprocessing'];
}

/** Loads a labelled image set and preprocesses it for the model's input. */
export async function prepareData(source: DataSource, model: Pick<ClassifierModel, 'sampleDims' | 'numClasses'>): Promise<PreparedData> {
  const raw: RawImageSet = await loadDataset({
    path: source.data,
    labelsPath: source.labels,
    limit: source.limit,
    maxDecompressedBytes: source.maxDecompressedBytes,
    allowNonFinite: source.allowNonFinite,
  });
  if (!raw.labels) {
    throw new UserError(
      `The dataset '${source.data}' has no labels.`,
      'Pass the labels file with --labels (IDX, .npy or a text file with one integer per line).',
    );
  }
  const spec = inferInputSpec([1, ...model.sampleDims]);
  const scale = source.preprocessing?.scale ?? (raw.pixels instanceof Uint8Array ? 1 / 255 : 1);
  const x = preprocess(raw, spec, { ...source.preprocessing, scale });
  const badLabel = raw.labels.findIndex((l) => l < 0 || l >= model.numClasses);
  if (badLabel >= 0) {
    throw new UserError(
      `Label ${raw.labels[badLabel]} of sample ${badLabel} in '${source.labels ?? source.data}' is outside the model's ${model.numClasses} classes (0..${model.numClasses - 1}).`,
      'Check that the labels file belongs to this dataset and model.',
    );
  }
  return {
    x,
    labels: raw.labels,
    count: raw.count,
    description: {
      format: raw.info.format,
      path: source.data,
      labelsPath: source.labels,
      count: raw.count,
      sha256: raw.info.sha256,
      sampleShape: [...model.sampleDims],
      preprocessing: { scale, mean: source.preprocessing?.mean, std: source.preprocessing?.std, layout: spec.layout },
      classNames: raw.info.classNames,
    },
  };
}
