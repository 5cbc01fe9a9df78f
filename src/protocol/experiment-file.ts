/**
 * Experiment files (*.rlab.json, the ExperimentFile type): parse and check them, turn them into
 * the worker's EvaluationConfig, and write defenses into them. The CLI (`robustness-lab run`) and the
 * extension read experiment files through these same functions. Paths in the file are relative to
 * the file's folder. Attack names and defense parameters are checked against the catalogue.
 */
import path from 'node:path';
import { CATALOGUE } from './catalogue';
import { THREAT_MODELS, type DefensePlan, type EvaluationConfig, type ExperimentFile, type UnknownPlan } from './experiment';
import { paramProblems } from './params';

export const EXPERIMENT_SUFFIX = '.rlab.json';

export class ExperimentFileError extends Error {
  constructor(file: string, problem: string) {
    super(`${path.basename(file)}: ${problem}`);
    this.name = 'ExperimentFileError';
  }
}

/** Parses and checks an experiment file's text; throws ExperimentFileError naming the problem. */
export function parseExperiment(text: string, file: string): ExperimentFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ExperimentFileError(file, `not valid JSON (${(e as Error).message}).`);
  }
  const problems = experimentProblems(value);
  if (problems.length) throw new ExperimentFileError(file, problems.join('; '));
  const e = value as ExperimentFile;
  return e.attacks && !e.attacks.names ? { ...e, attacks: { ...e.attacks, names: [] } } : e;
}

/** The schema's rules that matter for running (the JSON schema gives the editor the rest). */
export function experimentProblems(value: unknown): string[] {
  const p: string[] = [];
  const e = value as Partial<ExperimentFile> | null;
  if (!e || typeof e !== 'object' || Array.isArray(e)) return ['the file must hold a JSON object'];
  if (typeof e.model !== 'string' || !e.model) p.push('"model" (path to the .onnx file) is missing');
  if (typeof e.data !== 'string' || !e.data) p.push('"data" (path to the test images) is missing');
  if (e.limit !== undefined && !(Number.isInteger(e.limit) && e.limit > 0)) p.push('"limit" must be a positive integer');
  if (e.attacks !== undefined) {
    const a = e.attacks;
    const names = [...CATALOGUE.attacks.flatMap((x) => [x.name, ...x.aliases]), ...CATALOGUE.attackGroups.map((g) => g.name)];
    const strengths = CATALOGUE.strengths.map((x) => x.name);
    if (a?.strength !== undefined && !strengths.includes(a.strength)) p.push(`"attacks.strength" must be one of ${strengths.join(', ')}`);
    if (a?.names === undefined && a?.strength !== undefined) {
      // A strength alone names the attacks.
    } else if (!Array.isArray(a?.names) || (a.names.length === 0 && a.strength === undefined))
      p.push('"attacks.names" must list at least one attack (or give a "strength")');
    else
      for (const n of a.names)
        if (typeof n !== 'string' || !names.includes(n.toLowerCase()))
          p.push(`"attacks.names" holds ${JSON.stringify(n)}, not an attack (known: ${CATALOGUE.attacks.map((x) => x.name).join(', ')})`);
    if (!Array.isArray(a?.eps) || a.eps.length === 0 || a.eps.some((x) => typeof x !== 'number' || !(x >= 0)))
      p.push('"attacks.eps" must list non-negative numbers');
    if (a?.norm !== 'linf' && a?.norm !== 'l2') p.push('"attacks.norm" must be "linf" or "l2"');
  }
  if (e.defense !== undefined) {
    const d = e.defense;
    const spec = CATALOGUE.defenses.find((x) => x.kind === d?.kind);
    if (!spec) p.push(`"defense.kind" must be one of ${CATALOGUE.defenses.map((x) => x.kind).join(', ')}`);
    else p.push(...paramProblems(spec.params, d[spec.kind], `defense.${spec.kind}`));
    const other = CATALOGUE.defenses.find((x) => x.kind !== d?.kind && d?.[x.kind] !== undefined);
    if (other) p.push(`"defense.${other.kind}" holds parameters of another defense than "${String(d?.kind)}"`);
    if (typeof d?.layer !== 'string' || !d.layer) p.push('"defense.layer" (the tensor the defense goes after) is missing');
    if (typeof d?.reference !== 'string' || !d.reference) p.push('"defense.reference" (the images the defense is fitted on) is missing');
    if (d?.threats?.some((t) => !THREAT_MODELS.includes(t))) p.push(`"defense.threats" may hold ${THREAT_MODELS.join(', ')}`);
  }
  if (e.unknown !== undefined) p.push(...unknownProblems(e.unknown));
  return p;
}

function unknownProblems(u: unknown): string[] {
  const p: string[] = [];
  const v = u as Partial<UnknownPlan> | null;
  if (!v || typeof v !== 'object' || Array.isArray(v)) return ['"unknown" must be an object with "data" (the images of classes the model never learnt)'];
  if (typeof v.data !== 'string' || !v.data) p.push('"unknown.data" (the images of classes the model never learnt) is missing');
  if (v.labels !== undefined && typeof v.labels !== 'string') p.push('"unknown.labels" must be a path');
  if (v.limit !== undefined && !(Number.isInteger(v.limit) && v.limit > 0)) p.push('"unknown.limit" must be a positive integer');
  if (v.thresholds !== undefined && (!Array.isArray(v.thresholds) || v.thresholds.some((t) => typeof t !== 'number' || !(t >= 0 && t <= 1))))
    p.push('"unknown.thresholds" must list numbers from 0 to 1');
  for (const k of Object.keys(v)) if (!['data', 'labels', 'limit', 'thresholds'].includes(k)) p.push(`"unknown.${k}" is not a setting of "unknown"`);
  return p;
}

/** The experiment as the worker's config, with paths made absolute. */
/** The parts of an EvaluationConfig an experiment file defines (the seed defaults later). */
export type ExperimentConfig = Pick<EvaluationConfig, 'experiment' | 'model' | 'data' | 'labels' | 'limit' | 'attacks' | 'defense' | 'fooling' | 'unknown'> & {
  seed?: number;
};

export function experimentToConfig(e: ExperimentFile, file: string): ExperimentConfig {
  const dir = path.dirname(file);
  const abs = (p: string | undefined) => (p === undefined ? undefined : path.resolve(dir, p));
  return {
    experiment: { name: e.name ?? path.basename(file).replace(/\.rlab\.json$/i, ''), file },
    model: abs(e.model)!,
    data: abs(e.data)!,
    labels: abs(e.labels),
    limit: e.limit,
    seed: e.seed,
    attacks: e.attacks,
    defense: e.defense && { ...e.defense, reference: abs(e.defense.reference)!, referenceLabels: abs(e.defense.referenceLabels) },
    fooling: e.fooling,
    ...(e.unknown && { unknown: { ...e.unknown, data: abs(e.unknown.data)!, labels: abs(e.unknown.labels) } }),
  };
}

/** A path as an experiment file stores it: relative to the file, with forward slashes. */
export function relativePath(file: string, target: string): string {
  const rel = path.relative(path.dirname(file), target) || '.';
  return rel.split(path.sep).join('/');
}

/** The experiment with its defense replaced; keys in a stable, readable order. */
export function withDefense(e: ExperimentFile, defense: DefensePlan): ExperimentFile {
  return orderKeys({ ...e, defense });
}

export function orderKeys(e: ExperimentFile): ExperimentFile {
  const order: (keyof ExperimentFile)[] = ['name', 'model', 'data', 'labels', 'limit', 'seed', 'attacks', 'defense', 'fooling', 'unknown'];
  const out: Record<string, unknown> = {};
  for (const k of order) if (e[k] !== undefined) out[k] = e[k];
  for (const [k, v] of Object.entries(e)) if (!(k in out) && v !== undefined) out[k] = v;
  return out as unknown as ExperimentFile;
}

export function serializeExperiment(e: ExperimentFile): string {
  return JSON.stringify(orderKeys(e), null, 2) + '\n';
}
