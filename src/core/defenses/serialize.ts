/**
 * Saving and loading fitted defense stages: the ONNX model as bytes (every initializer inline)
 * plus a JSON description (kind, layer, placement, scores, params and the model's SHA-256, so that
 * a model file and a description that do not belong together are detected). Writing the two
 * files atomically is the artifact cache's job.
 */
import { UserError } from '../errors';
import { sha256Hex } from '../model/load';
import { decodeModel, encodeModel } from '../onnx/proto';
import { DEFENSE_KINDS } from './registry';
import { DEFENSE_IO, type DefenseStage } from './types';

export const DEFENSE_FORMAT = 'robustness-lab/defense-stage';
export const DEFENSE_FORMAT_VERSION = 1;

export interface SerializedDefense {
  /** The defense model, ONNX protobuf bytes. */
  model: Uint8Array;
  /** The description, JSON text. */
  meta: string;
}

interface Meta {
  format: string;
  version: number;
  kind: string;
  layer: string;
  placement: DefenseStage['placement'];
  scores: DefenseStage['scores'];
  params: Record<string, unknown>;
  modelSha256: string;
}

export function serializeDefense(stage: DefenseStage): SerializedDefense {
  const model = encodeModel(stage.model);
  const meta: Meta = {
    format: DEFENSE_FORMAT,
    version: DEFENSE_FORMAT_VERSION,
    kind: stage.kind,
    layer: stage.layer,
    placement: stage.placement,
    scores: stage.scores,
    params: stage.params,
    modelSha256: sha256Hex(model),
  };
  const text = JSON.stringify(meta, null, 2);
  // Params must survive JSON unchanged (no typed arrays, NaN, undefined...).
  if (JSON.stringify(JSON.parse(text).params) !== JSON.stringify(stage.params)) throw new Error('defense params are not JSON-serialisable');
  return { model, meta: text };
}

export function deserializeDefense(model: Uint8Array, meta: string): DefenseStage {
  let m: Meta;
  try {
    m = JSON.parse(meta) as Meta;
  } catch (e) {
    throw new UserError(`The defense description is not valid JSON: ${(e as Error).message}`, 'Delete the cached defense to fit it again.');
  }
  if (m?.format !== DEFENSE_FORMAT || m.version !== DEFENSE_FORMAT_VERSION) {
    throw new UserError(
      `Unsupported defense description (format ${String(m?.format)}, version ${String(m?.version)}).`,
      'Delete the cached defense to fit it again.',
    );
  }
  if (
    !(DEFENSE_KINDS as readonly string[]).includes(m.kind) ||
    !['before-tail', 'after-tail'].includes(m.placement) ||
    !['logits', 'probabilities'].includes(m.scores) ||
    typeof m.layer !== 'string'
  ) {
    throw new UserError('The defense description has invalid fields.', 'Delete the cached defense to fit it again.');
  }
  if (sha256Hex(model) !== m.modelSha256) {
    throw new UserError('The defense model does not match its description (SHA-256 differs).', 'Delete the cached defense to fit it again.');
  }
  const decoded = decodeModel(model);
  const inputs = new Set((decoded.graph?.input ?? []).map((v) => v.name));
  const outputs = new Set((decoded.graph?.output ?? []).map((v) => v.name));
  const wantOut = m.placement === 'before-tail' ? DEFENSE_IO.activationOut : DEFENSE_IO.scores;
  if (!inputs.has(DEFENSE_IO.activation) || !outputs.has(wantOut)) {
    throw new UserError(`The defense model lacks its '${DEFENSE_IO.activation}' input or '${wantOut}' output.`, 'Delete the cached defense to fit it again.');
  }
  return { kind: m.kind, layer: m.layer, placement: m.placement, scores: m.scores, model: decoded, params: m.params ?? {} };
}
