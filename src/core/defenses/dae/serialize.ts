/** Saving a fitted dAE as one ONNX file: the weights as initializers, the fitted parameters as metadata. */
import { UserError } from '../../errors';
import { decodeModel, encodeModel } from '../../onnx/proto';
import type { DefenseStage } from '../types';

const METADATA_KEY = 'robustness-lab.defense';

export function serializeDae(stage: DefenseStage): Uint8Array {
  const meta = JSON.stringify({ kind: stage.kind, layer: stage.layer, placement: stage.placement, scores: stage.scores, params: stage.params });
  const others = (stage.model.metadataProps ?? []).filter((p) => p.key !== METADATA_KEY);
  return encodeModel({ ...stage.model, metadataProps: [...others, { key: METADATA_KEY, value: meta }] });
}

export function deserializeDae(bytes: Uint8Array): DefenseStage {
  const model = decodeModel(bytes);
  const entry = (model.metadataProps ?? []).find((p) => p.key === METADATA_KEY);
  if (!entry?.value) throw new UserError('This ONNX file is not a saved dAE defense (no defense metadata).', 'Refit the defense.');
  const meta = JSON.parse(entry.value) as Omit<DefenseStage, 'model'>;
  if (meta.kind !== 'dae') throw new UserError(`This saved defense is a '${meta.kind}' defense, not a dAE.`);
  return { ...meta, model: { ...model, metadataProps: (model.metadataProps ?? []).filter((p) => p.key !== METADATA_KEY) } };
}
