/**
 * Fitting a defense from a plan: reference activations at the layer, the fit itself, and the
 * workspace cache that makes a second run with the same model, data and parameters instant.
 */
import { throwIfCancelled } from '../cancel';
import path from 'node:path';
import { UserError } from '../errors';
import { assertInsideRoots } from '../paths';
import type { ModelGraph } from '../model/graph';
import type { LoadedModel } from '../model/load';
import { defenseParams, type DefensePlan } from '../../protocol/experiment';
import { referenceActivations } from './activations';
import { loadCachedDefense, saveDefense, type DefenseCacheKey } from './cache';
import { paramProblems } from '../../protocol/params';
import { defenseSpec } from './registry';
import type { DefenseStage } from './types';

/** Bump when a fit changes, so that cached fits of the old algorithm are not reused. */
const FIT_VERSION = 2;

export interface FitContext {
  loaded: LoadedModel;
  graph: ModelGraph;
  reference: { x: Float32Array; labels: Int32Array; count: number; sha256: string };
  seed: number;
  cacheDir: string;
  threads: number;
  batchSize: number;
  signal?: AbortSignal;
  log(line: string): void;
  /** Training progress of defenses that train (epochs done of all). */
  onProgress?(done: number, total: number): void;
}

export interface FittedDefense {
  stage: DefenseStage;
  fitSeconds: number;
  cached: boolean;
  cacheFile: string;
}

export function defaultCacheDir(modelPath: string): string {
  return path.join(path.dirname(path.resolve(modelPath)), '.rlab-cache');
}

/** The insertion point is checked before any work: the error lists the valid ones. */
export function checkLayer(graph: ModelGraph, layer: string): void {
  if (graph.insertionTensors.includes(layer)) return;
  const insideBlock = graph.layers.some((l) => l.outputs.includes(layer));
  const valid = graph.insertionTensors.slice(0, 12).join(', ') + (graph.insertionTensors.length > 12 ? ', …' : '');
  throw new UserError(
    insideBlock
      ? `Tensor '${layer}' is not an insertion point: another path from the input to the output bypasses it (a residual connection).`
      : `The model has no tensor named '${layer}'.`,
    `Pick one of the insertion points (robustness-lab inspect lists them): ${valid}`,
  );
}

export async function fitDefense(plan: DefensePlan, ctx: FitContext): Promise<FittedDefense> {
  checkLayer(ctx.graph, plan.layer);
  const seed = plan.seed ?? ctx.seed;
  const spec = defenseSpec(plan.kind);
  const params = defenseParams(plan);
  const problems = paramProblems(spec.params, params, `defense.${plan.kind}`);
  if (problems.length) throw new UserError(`The ${spec.title} parameters are not valid: ${problems.join('; ')}.`);
  const key: DefenseCacheKey = {
    kind: plan.kind,
    layer: plan.layer,
    modelSha256: ctx.loaded.sha256,
    referenceSha256: ctx.reference.sha256,
    referenceCount: ctx.reference.count,
    params,
    seed,
    fitVersion: FIT_VERSION,
  };
  const cached = loadCachedDefense(ctx.cacheDir, key, ctx.log);
  if (cached) {
    ctx.log(`Reusing the ${plan.kind} fit cached in ${cached.file} (fitted in ${cached.fitSeconds.toFixed(1)} s).`);
    return { stage: cached.stage, fitSeconds: cached.fitSeconds, cached: true, cacheFile: cached.file };
  }
  assertInsideRoots(ctx.cacheDir, 'defense cache folder'); // fail before the fit, not after it
  const t0 = performance.now();
  ctx.log(`Computing reference activations at '${plan.layer}' for ${ctx.reference.count} images…`);
  const ref = await referenceActivations(ctx, plan.layer, ctx.reference.x, ctx.reference.count, ctx.reference.labels, {
    threads: ctx.threads,
    batchSize: ctx.batchSize,
    ep: 'cpu',
  });
  throwIfCancelled(ctx.signal, 'The fit');
  // The classifier and the raw reference images: the isometric head retrains the tail on them.
  const sources = { model: { loaded: ctx.loaded, graph: ctx.graph }, inputs: { x: ctx.reference.x, count: ctx.reference.count } };
  const fitCtx = { layer: plan.layer, seed, threads: ctx.threads, signal: ctx.signal, log: ctx.log, onProgress: ctx.onProgress, sources };
  const stage = await spec.fit(ref, params, fitCtx);
  const fitSeconds = (performance.now() - t0) / 1000;
  const cacheFile = saveDefense(ctx.cacheDir, key, stage, fitSeconds);
  ctx.log(`Fitted ${plan.kind} at '${plan.layer}' in ${fitSeconds.toFixed(1)} s; cached in ${cacheFile}.`);
  return { stage, fitSeconds, cached: false, cacheFile };
}
