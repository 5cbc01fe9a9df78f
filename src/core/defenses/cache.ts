/**
 * Fitted defenses cached in the workspace, keyed by a hash of everything the fit depends on (the
 * model's and reference data's SHA-256, the layer, the parameters, the seed). Written atomically:
 * the ONNX file first, then the JSON that names it, so a half-written entry is never read.
 *
 * A cache folder can come with a workspace, so entries are read defensively: an entry whose
 * `modelFile` is anything but a plain file name in the cache folder, a file that is not a regular
 * file inside the folder (a link out of it, a FIFO), a model that points at external data, or
 * anything unreadable is ignored (a miss, then refitted and overwritten), with the reason logged.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../fs-atomic';
import { hasExternalData } from '../model/load';
import { decodeModel } from '../onnx/proto';
import { assertInsideRoots, readContainedSync } from '../paths';
import { deserializeDefense, serializeDefense } from './serialize';
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

/**
 * A cache entry: the key it was fitted under, and the fitted defense in the one on-disk format of
 * serialize.ts (the ONNX model in `modelFile`, its description with the model's SHA-256 in `defense`).
 */
interface CacheEntry {
  key: DefenseCacheKey;
  defense: unknown;
  modelFile: string;
  fitSeconds: number;
  createdAt: string;
}

/** Cache entries (JSON) and cached models larger than this are not read. */
const MAX_ENTRY_BYTES = 16 * 1024 ** 2;
const MAX_MODEL_BYTES = 2 ** 31 - 1;

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function cacheKeyHash(key: DefenseCacheKey): string {
  return createHash('sha256').update(canonical(key)).digest('hex').slice(0, 24);
}

/**
 * Whether `name` is a plain file name that stays in its folder: no separators (either kind), not
 * '.' or '..', no NUL, no drive letter, not absolute.
 */
export function isPlainFileName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name.length <= 255 &&
    name !== '.' &&
    name !== '..' &&
    !/[\\/\0:]/.test(name) &&
    path.basename(name) === name &&
    !path.isAbsolute(name)
  );
}

/**
 * The cached fit for `key`, or undefined (a miss). `log` receives the reason an entry that exists
 * was ignored (default: a warning on stderr).
 */
export function loadCachedDefense(
  dir: string,
  key: DefenseCacheKey,
  log: (line: string) => void = (line) => console.warn(line),
): { stage: DefenseStage; fitSeconds: number; file: string } | undefined {
  const base = path.join(dir, `${key.kind}-${cacheKeyHash(key)}`);
  const jsonFile = `${base}.json`;
  if (!existsOrLink(jsonFile)) return undefined;
  const ignore = (why: string) => {
    log(`Defense cache: ignoring ${jsonFile}: ${why}; fitting again.`);
    return undefined;
  };
  try {
    assertInsideRoots(dir, 'defense cache folder');
  } catch (e) {
    return ignore(firstLine(e));
  }
  let entry: CacheEntry;
  try {
    const { bytes } = readContainedSync(jsonFile, { what: 'cache entry', root: dir, maxBytes: MAX_ENTRY_BYTES });
    entry = JSON.parse(new TextDecoder().decode(bytes)) as CacheEntry;
  } catch (e) {
    return ignore(`unreadable (${firstLine(e)})`);
  }
  if (!entry || typeof entry !== 'object' || !entry.defense || typeof entry.defense !== 'object') return ignore('not a cache entry of this version');
  if (canonical(entry.key) !== canonical(key)) return ignore('its key does not match its file name');
  if (!isPlainFileName(entry.modelFile))
    return ignore(`its modelFile ${JSON.stringify(String(entry.modelFile).slice(0, 80))} is not a plain file name inside the cache folder`);
  try {
    const { bytes } = readContainedSync(path.join(dir, entry.modelFile), { what: 'cached defense model', root: dir, maxBytes: MAX_MODEL_BYTES });
    if (hasExternalData(decodeModel(bytes))) return ignore(`its model ${entry.modelFile} points at external data, which cached fits never do`);
    // The same checks as any fitted defense read back: description fields, the model's hash, its inputs and outputs.
    const stage = deserializeDefense(bytes, JSON.stringify(entry.defense));
    const fitSeconds = typeof entry.fitSeconds === 'number' && Number.isFinite(entry.fitSeconds) ? entry.fitSeconds : 0;
    return { stage, fitSeconds, file: jsonFile };
  } catch (e) {
    return ignore(`its model ${entry.modelFile} is unreadable (${firstLine(e)})`);
  }
}

function existsOrLink(p: string): boolean {
  if (existsSync(p)) return true;
  try {
    lstatSync(p); // a dangling link is worth a logged reason too
    return true;
  } catch {
    return false;
  }
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 200);
}

/**
 * Writes the entry (atomically: model first, then the JSON naming it). In the compute process the
 * cache folder must lie inside the workspace (a UserError otherwise: call assertInsideRoots(dir,
 * 'defense cache folder') before fitting to fail early).
 */
export function saveDefense(dir: string, key: DefenseCacheKey, stage: DefenseStage, fitSeconds: number): string {
  assertInsideRoots(dir, 'defense cache folder');
  const base = path.join(dir, `${key.kind}-${cacheKeyHash(key)}`);
  const { model, meta } = serializeDefense(stage);
  writeFileAtomic(`${base}.onnx`, model);
  const entry: CacheEntry = { key, defense: JSON.parse(meta), modelFile: path.basename(`${base}.onnx`), fitSeconds, createdAt: new Date().toISOString() };
  writeJsonAtomic(`${base}.json`, entry);
  return `${base}.json`;
}
