/**
 * Fitted defenses cached in the workspace, keyed by a hash of everything the fit depends on (the
 * model's and reference data's SHA-256, the layer, the parameters, the seed). Written atomically:
 * the ONNX file first, then the JSON that names it, so a half-written entry is never read.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../fs-atomic';
import { decodeModel, encodeModel } from '../onnx/proto';
import type { DefenseStage } from './types';

export interface DefenseCacheKey {
  kind: string;
  layer: string;
  modelSha256: string;
  referenceSha256: string;
  referenceCount: number;
  params: Record<string, unknown>;
  seed: number;
  /** Bump when a fit's algorithm changes so old entries are not reused. */
  fitVersion: number;
}

interface CacheEntry {
  key: DefenseCacheKey;
  stage: Omit<DefenseStage, 'model'>;
  modelFile: string;
  fitSeconds: number;
  createdAt: string;
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as object).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function cacheKeyHash(key: DefenseCacheKey): string {
  return createHash('sha256').update(canonical(key)).digest('hex').slice(0, 24);
}

export function loadCachedDefense(dir: string, key: DefenseCacheKey): { stage: DefenseStage; fitSeconds: number; file: string } | undefined {
  const base = path.join(dir, `${key.kind}-${cacheKeyHash(key)}`);
  if (!existsSync(`${base}.json`)) return undefined;
  try {
    const entry = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as CacheEntry;
    if (canonical(entry.key) !== canonical(key)) return undefined;
    const model = decodeModel(readFileSync(path.join(dir, entry.modelFile)));
    return { stage: { ...entry.stage, model }, fitSeconds: entry.fitSeconds, file: `${base}.json` };
  } catch {
    return undefined; // An unreadable entry is refitted and overwritten.
  }
}

export function saveDefense(dir: string, key: DefenseCacheKey, stage: DefenseStage, fitSeconds: number): string {
  const base = path.join(dir, `${key.kind}-${cacheKeyHash(key)}`);
  const { model, ...rest } = stage;
  writeFileAtomic(`${base}.onnx`, encodeModel(model));
  const entry: CacheEntry = { key, stage: rest, modelFile: path.basename(`${base}.onnx`), fitSeconds, createdAt: new Date().toISOString() };
  writeJsonAtomic(`${base}.json`, entry);
  return `${base}.json`;
}
