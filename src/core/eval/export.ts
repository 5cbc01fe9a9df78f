/**
 * Export: fit (or reuse) a defense and write the defended classifier as ONE ONNX model (head,
 * defense, tail). onnxruntime or any other ONNX runtime runs it without this tool.
 */
import { composeDefended } from '../defenses/compose';
import { defaultCacheDir, fitDefense, type FittedDefense } from '../defenses/fit';
import { writeFileAtomic } from '../fs-atomic';
import { encodeModel } from '../onnx/proto';
import { TOOL_VERSION } from '../version';
import type { DefensePlan, EvaluationConfig } from '../../protocol/experiment';
import type { RunHooks } from './context';
import { prepareData } from './data';
import { openClassifier } from './model-session';

export interface ExportRequest {
  model: string;
  defense: DefensePlan;
  out: string;
  seed: number;
  threads: number;
  batchSize: number;
  cacheDir?: string;
  preprocessing?: EvaluationConfig['preprocessing'];
}

export interface ExportResult {
  out: string;
  bytes: number;
  fit: FittedDefense;
  outputs: string[];
}

export async function exportDefended(req: ExportRequest, hooks: RunHooks = {}): Promise<ExportResult> {
  const model = await openClassifier(req.model, { ep: 'cpu', threads: req.threads });
  try {
    const plan = req.defense;
    const reference = await prepareData(
      { data: plan.reference, labels: plan.referenceLabels, limit: plan.referenceLimit, preprocessing: req.preprocessing },
      model,
    );
    const fit = await fitDefense(plan, {
      loaded: model.loaded,
      graph: model.graph,
      reference: { x: reference.x, labels: reference.labels, count: reference.count, sha256: reference.description.sha256 },
      seed: req.seed,
      cacheDir: req.cacheDir ?? defaultCacheDir(req.model),
      threads: req.threads,
      batchSize: req.batchSize,
      signal: hooks.signal,
      log: hooks.onLog ?? (() => {}),
    });
    const defended = composeDefended(model.loaded.model, fit.stage);
    // Provenance travels with the file: what was inserted where, fitted on what.
    defended.model.metadataProps = [
      ...(defended.model.metadataProps ?? []).filter((p) => !p.key?.startsWith('robustness_lab.')),
      { key: 'robustness_lab.version', value: TOOL_VERSION },
      {
        key: 'robustness_lab.defense',
        value: JSON.stringify({ kind: plan.kind, layer: plan.layer, placement: fit.stage.placement, scores: fit.stage.scores, params: fit.stage.params }),
      },
      { key: 'robustness_lab.source_model_sha256', value: model.loaded.sha256 },
      { key: 'robustness_lab.reference_sha256', value: reference.description.sha256 },
    ];
    const bytes = encodeModel(defended.model);
    writeFileAtomic(req.out, bytes);
    return { out: req.out, bytes: bytes.length, fit, outputs: (defended.model.graph!.output ?? []).map((o) => o.name ?? '') };
  } finally {
    await model.session.release();
  }
}
