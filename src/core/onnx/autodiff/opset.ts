/**
 * The opset the backward graph is emitted in. Normally the model's own. A rule may want a newer
 * one (MaxPool with overlapping windows wants 16 for ScatterElements' reduction='add'); a model at
 * opset 13-15 is then raised to 16. Between 13 and 16 every op keeps its inference semantics
 * (the changes are new types, new ops and attributes whose defaults keep the old behaviour)
 * except RoiAlign-16, whose default coordinate_transformation_mode changed, and
 * BatchNormalization-14, whose extra outputs changed meaning (training only): models with those
 * are not raised, and the rules fall back to constructions that work in the model's opset.
 * Models below 13 are never raised: Softmax, the axes-as-input ops and more changed at 13.
 */
import { opsetVersion, type ModelProto } from '../proto';

const RAISE_FROM = 13;
const RAISE_TO = 16;

export function plannedOpset(model: ModelProto, wanted: number): number {
  const current = opsetVersion(model);
  if (wanted <= current || current < RAISE_FROM || wanted > RAISE_TO) return current;
  const blocked = (model.graph?.node ?? []).some(
    (n) =>
      (!n.domain || n.domain === 'ai.onnx') && (n.opType === 'RoiAlign' || (n.opType === 'BatchNormalization' && (n.output ?? []).filter(Boolean).length > 1)),
  );
  return blocked ? current : wanted;
}

/** The model importing `opset` for the default domain (IR version raised to what that opset needs). */
export function withOpset(model: ModelProto, opset: number): ModelProto {
  if (opset === opsetVersion(model)) return model;
  const others = (model.opsetImport ?? []).filter((o) => o.domain && o.domain !== 'ai.onnx');
  return { ...model, irVersion: Math.max(model.irVersion ?? 7, 8), opsetImport: [{ domain: '', version: opset }, ...others] };
}
