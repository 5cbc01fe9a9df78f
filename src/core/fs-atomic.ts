/**
 * Atomic file writes: write to a temporary file beside the target, then rename over it, so a
 * reader never sees half a file and a failed or cancelled run leaves none. Temporary files are
 * named `<target>.<pid>.<stamp>.tmp`; ones a killed run left behind (older than an hour) are removed
 * by the next write into the same folder.
 */
import { accessSync, constants, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from './errors';

/** Temporary files older than this are taken to be left over from a killed run. */
export const STALE_TMP_MS = 60 * 60 * 1000;
const TMP_NAME = /^.+\.\d+\.\d+\.tmp$/;

let writeGuard: AbortSignal | undefined;
let tmpSeq = 0;

/**
 * Once `signal` has fired, every atomic write throws an AbortError instead of writing: a run
 * cancelled by Ctrl-C or SIGTERM leaves no file even in a phase that does not check the signal.
 */
export function guardWrites(signal: AbortSignal | undefined): void {
  writeGuard = signal;
}

export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  if (writeGuard?.aborted) throw new DOMException(`Cancelled before writing ${target}.`, 'AbortError');
  const dir = path.dirname(path.resolve(target));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(target, e);
  }
  cleanStaleTemps(dir);
  // <pid>.<µs-ish stamp>: unique within the process even for two writes in the same millisecond.
  const tmp = `${target}.${process.pid}.${Date.now() * 1000 + (tmpSeq++ % 1000)}.tmp`;
  try {
    // 'wx': never write through a file (or link) someone planted under the temporary name.
    writeFileSync(tmp, data, { flag: 'wx' });
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw writeError(target, e);
  }
}

export function writeJsonAtomic(target: string, value: unknown): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n');
}

function writeError(target: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (!code) return e as Error;
  const why: Record<string, string> = {
    EISDIR: 'it is a folder',
    ENOTDIR: 'a part of its path is a file, not a folder',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOSPC: 'the disk is full',
    EROFS: 'the file system is read-only',
    ENAMETOOLONG: 'the name is too long',
    EDQUOT: 'the disk quota is exhausted',
  };
  return new UserError(`Cannot write '${target}': ${why[code] ?? (e as Error).message}.`, 'Choose another output path.');
}

/**
 * Removes `<name>.<pid>.<ms>.tmp` files older than `maxAgeMs` from `dir` (regular files only,
 * links are never followed). Returns the names removed. Never throws.
 */
export function cleanStaleTemps(dir: string, maxAgeMs = STALE_TMP_MS, now = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    if (!TMP_NAME.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const st = lstatSync(file);
      if (!st.isFile() || now - st.mtimeMs < maxAgeMs) continue;
      rmSync(file, { force: true });
      removed.push(name);
    } catch {
      // Gone already, or not ours to remove.
    }
  }
  return removed;
}

/**
 * Pre-flight check of an output path before a run starts, so a long run does not fail at the very
 * end: the target must not be a folder or a special file, and its folder must exist (or be
 * creatable) under a writable folder, with no file in the way. Returns the absolute path.
 */
export function checkWritableOut(target: string, flag = '--out'): string {
  if (typeof target !== 'string' || target.trim() === '' || target.includes('\0'))
    throw new UserError(`${flag} must name a file, got ${JSON.stringify(target)}.`);
  if (/[\\/]$/.test(target)) throw new UserError(`${flag} '${target}' names a folder; give a file name.`, `e.g. ${flag} ${path.join(target, 'result.json')}`);
  const abs = path.resolve(target);
  let st;
  try {
    st = lstatSync(abs);
  } catch {
    st = undefined;
  }
  if (st?.isSymbolicLink()) {
    try {
      st = statSync(abs);
    } catch {
      st = undefined; // a dangling link is replaced by the rename
    }
  }
  if (st?.isDirectory()) throw new UserError(`${flag} '${target}' is a folder; give a file name.`, `e.g. ${flag} ${path.join(target, 'result.json')}`);
  if (st && !st.isFile())
    throw new UserError(`${flag} '${target}' exists and is not a regular file (a pipe, socket or device).`, 'Choose another output path.');
  // The nearest existing ancestor must be a folder we can write into; everything below it is created.
  let dir = path.dirname(abs);
  for (;;) {
    let ds;
    try {
      ds = statSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw new UserError(`${flag} '${target}' lies under a file, not a folder.`, 'Choose another output path.');
      if (code !== 'ENOENT') throw writeError(target, e);
      const up = path.dirname(dir);
      if (up === dir) throw new UserError(`${flag} '${target}': no part of its folder exists.`);
      dir = up;
      continue;
    }
    if (!ds.isDirectory()) throw new UserError(`${flag} '${target}' lies under '${dir}', which is a file, not a folder.`, 'Choose another output path.');
    break;
  }
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch {
    throw new UserError(`${flag} '${target}': the folder '${dir}' is not writable.`, 'Choose an output path in a folder you can write to.');
  }
  return abs;
}
