/**
 * One containment rule for every file this tool reads from a workspace: the model, its external
 * data, datasets, labels, images and cache entries.
 *
 * 1. The path is checked lexically against its root(s) before anything outside is touched.
 * 2. It is resolved with realpath (symbolic links followed) and checked again: a link that leads
 *    out of the root is refused like a `../` path.
 * 3. Only regular files are opened: FIFOs, sockets, devices and folders are refused from a stat
 *    taken before the file is opened, and the file is opened non-blocking and checked again with
 *    fstat, so a FIFO swapped in between can never block a read.
 *
 * Errors name the file (as given) and the root, never the file's content.
 */
import { constants, closeSync, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { open as openAsync, realpath as realpathAsync, stat as statAsync } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from './errors';

/** Root folder(s) a file must lie inside; undefined: no containment, only the regular-file rule. */
export type Roots = string | readonly string[] | undefined;

export interface ReadOptions {
  /** What the file is, for messages: 'model file', 'labels file', 'external data file' … */
  what: string;
  /** The folder(s) the file must stay inside. Defaults to the process-wide roots (setAllowedRoots). */
  root?: Roots;
  /** Refuse files larger than this many bytes (default: the 2 GiB Node can read in one piece). */
  maxBytes?: number;
  /** Words for the root in messages, e.g. "the model's folder" (default: "the allowed folder"). */
  rootName?: string;
  /** Said after the path in messages, e.g. "of initializer 'w' in 'm.onnx'". */
  context?: string;
}

export interface ContainedFile {
  /** The path as given (for messages). */
  path: string;
  /** The resolved path (symbolic links followed). */
  real: string;
  size: number;
}

/** Node reads at most this many bytes into one buffer (fs.readFile's limit). */
export const MAX_READ_BYTES = 2 ** 31 - 1;

/* Opened non-blocking (a FIFO never blocks open or read) and without following a final symlink. */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOFOLLOW ?? 0);

let processRoots: string[] | undefined;

/**
 * Sets the folders every model, dataset and labels file of this process must lie inside when the
 * caller names no root (the compute process sets the workspace folders). undefined: no limit.
 */
export function setAllowedRoots(roots: readonly string[] | undefined): void {
  processRoots = roots && roots.length ? roots.map((r) => path.resolve(r)) : undefined;
}

export function allowedRoots(): readonly string[] | undefined {
  return processRoots;
}

function rootList(root: Roots): string[] | undefined {
  const list = root === undefined ? processRoots : typeof root === 'string' ? [root] : [...root];
  return list && list.length ? list.map((r) => path.resolve(r)) : undefined;
}

/** True when `p` is `root` or inside it (both absolute and normalised). */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!path.isAbsolute(rel) && !/^\.\.(?:[\\/]|$)/.test(rel));
}

function describeRoots(roots: readonly string[]): string {
  return roots.length === 1 ? `'${roots[0]}'` : `(${roots.map((r) => `'${r}'`).join(', ')})`;
}

function realOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

interface Naming {
  rootName?: string;
  context?: string;
}

function named(shown: string, what: string, naming: Naming): string {
  return `the ${what} '${shown}'${naming.context ? ` ${naming.context}` : ''}`;
}

function outside(shown: string, what: string, roots: readonly string[], viaLink: boolean, naming: Naming): UserError {
  const rootWords = naming.rootName ?? (roots.length === 1 ? 'the allowed folder' : 'the allowed folders');
  return new UserError(
    `${capital(named(shown, what, naming))} leaves ${rootWords} ${describeRoots(roots)}${viaLink ? ' through a symbolic link' : ''}; for safety only files inside it are read.`,
    'Move the file inside that folder (a copy, not a link), or fix the path.',
  );
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function missing(shown: string, what: string, err: unknown, naming: Naming = {}): UserError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOENT'
      ? 'it does not exist'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'ELOOP'
          ? 'too many symbolic links'
          : code === 'ENOTDIR'
            ? 'a part of the path is a file, not a folder'
            : ((err as Error)?.message ?? String(err));
  return new UserError(`Cannot read ${named(shown, what, naming)}: ${why}.`, 'Check the path (relative paths are resolved against the working directory).');
}

/** The kind of a non-regular file, in words. */
export function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function notRegular(shown: string, what: string, st: Stats, naming: Naming = {}): UserError {
  return new UserError(
    `${capital(named(shown, what, naming))} is ${fileKind(st)}, not a regular file; only regular files are read.`,
    st.isDirectory() ? 'Give the path of a file inside it.' : undefined,
  );
}

/**
 * Resolves `p` (relative paths against `base`, default the working directory), checks it stays
 * inside `root` lexically and after following symbolic links, and returns the real path. The
 * file must exist. No root (and no process-wide roots): only resolves.
 */
export function resolveInside(root: Roots, p: string, what: string, base?: string, naming: Naming = {}): string {
  if (typeof p !== 'string' || p === '' || p.includes('\0')) throw new UserError(`The ${what} path ${JSON.stringify(p)} is not a valid path.`);
  const roots = rootList(root);
  const abs = path.resolve(base ?? process.cwd(), p);
  if (roots && !roots.some((r) => isInside(r, abs))) throw outside(p, what, roots, false, naming);
  let real: string;
  try {
    real = realpathSync(abs);
  } catch (e) {
    throw missing(p, what, e, naming);
  }
  if (roots) {
    const realRoots = roots.map((r) => realOrNull(r) ?? r);
    if (!realRoots.some((r) => isInside(r, real))) throw outside(p, what, roots, true, naming);
  }
  return real;
}

/** resolveInside + the regular-file rule (from a stat, nothing is opened). */
export function statContained(p: string, options: ReadOptions & { base?: string }): ContainedFile {
  const real = resolveInside(options.root, p, options.what, options.base, options);
  let st: Stats;
  try {
    st = statSync(real);
  } catch (e) {
    throw missing(p, options.what, e, options);
  }
  if (!st.isFile()) throw notRegular(p, options.what, st, options);
  checkSize(p, options, st.size);
  return { path: p, real, size: st.size };
}

function checkSize(shown: string, options: ReadOptions, size: number): void {
  const max = Math.min(options.maxBytes ?? MAX_READ_BYTES, MAX_READ_BYTES);
  if (size > max) {
    throw new UserError(
      `The ${options.what} '${shown}' has ${size} bytes, more than the ${max}-byte limit for one file.`,
      max < MAX_READ_BYTES ? 'Raise the limit if the file is genuine.' : 'Split the data into smaller files.',
    );
  }
}

/** An open, verified regular file: read ranges with `read`, then `close`. */
export interface OpenedFile extends ContainedFile {
  fd: number;
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

/** Opens a contained regular file for reading (non-blocking, no final symlink, re-checked with fstat). */
export function openContained(p: string, options: ReadOptions & { base?: string }): OpenedFile {
  const file = statContained(p, options);
  let fd: number;
  try {
    fd = openSync(file.real, READ_FLAGS);
  } catch (e) {
    throw missing(p, options.what, e, options);
  }
  try {
    const st = fstatSync(fd);
    const before = lstatSync(file.real);
    if (!st.isFile()) throw notRegular(p, options.what, st, options);
    if (before.ino !== st.ino || before.dev !== st.dev)
      throw new UserError(`The ${options.what} '${p}' changed while it was being opened.`, 'Try again once nothing else is writing the folder.');
    checkSize(p, options, st.size);
    file.size = st.size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return {
    ...file,
    fd,
    read(offset: number, length: number): Uint8Array {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0)
          throw new UserError(
            `The ${options.what} '${p}' ended after ${offset + done} bytes while ${offset + length} were expected (it changed while being read?).`,
          );
        done += n;
      }
      return out;
    },
    close: () => closeSync(fd),
  };
}

/** Reads a whole contained regular file. */
export function readContainedSync(p: string, options: ReadOptions & { base?: string }): { bytes: Uint8Array; real: string } {
  const f = openContained(p, options);
  try {
    return { bytes: f.read(0, f.size), real: f.real };
  } finally {
    f.close();
  }
}

/** Async resolveInside (the same checks, without blocking the event loop on slow disks). */
export async function resolveInsideAsync(root: Roots, p: string, what: string, naming: Naming = {}): Promise<string> {
  if (typeof p !== 'string' || p === '' || p.includes('\0')) throw new UserError(`The ${what} path ${JSON.stringify(p)} is not a valid path.`);
  const roots = rootList(root);
  const abs = path.resolve(p);
  if (roots && !roots.some((r) => isInside(r, abs))) throw outside(p, what, roots, false, naming);
  let real: string;
  try {
    real = await realpathAsync(abs);
  } catch (e) {
    throw missing(p, what, e, naming);
  }
  if (roots) {
    const realRoots = await Promise.all(roots.map((r) => realpathAsync(r).catch(() => r)));
    if (!realRoots.some((r) => isInside(r, real))) throw outside(p, what, roots, true, naming);
  }
  return real;
}

/** Async readContainedSync: the file's bytes, after the containment and regular-file checks. */
export async function readContained(p: string, options: ReadOptions): Promise<{ bytes: Uint8Array; real: string }> {
  const real = await resolveInsideAsync(options.root, p, options.what, options);
  let st: Stats;
  try {
    st = await statAsync(real);
  } catch (e) {
    throw missing(p, options.what, e, options);
  }
  if (!st.isFile()) throw notRegular(p, options.what, st, options);
  checkSize(p, options, st.size);
  let handle;
  try {
    handle = await openAsync(real, READ_FLAGS);
  } catch (e) {
    throw missing(p, options.what, e, options);
  }
  try {
    const st2 = await handle.stat();
    if (!st2.isFile()) throw notRegular(p, options.what, st2, options);
    if (st2.ino !== st.ino || st2.dev !== st.dev)
      throw new UserError(`The ${options.what} '${p}' changed while it was being opened.`, 'Try again once nothing else is writing the folder.');
    checkSize(p, options, st2.size);
    const out = new Uint8Array(st2.size);
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await handle.read(out, done, out.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return { bytes: done === out.length ? out : out.subarray(0, done), real };
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw missing(p, options.what, e, options);
  } finally {
    await handle.close();
  }
}

/** Whether `p` names an existing folder (after the containment check); a FIFO or file is false. */
export async function isContainedDirectory(p: string, what: string, root?: Roots): Promise<{ real: string; directory: boolean }> {
  const real = await resolveInsideAsync(root, p, what);
  const st = await statAsync(real);
  return { real, directory: st.isDirectory() };
}

/**
 * For folders a run writes into (a defense cache folder, say): when `root` (or the process-wide
 * roots) is set, `p` must lie inside it, lexically and after following the symbolic links of the
 * part of the path that exists. The folder itself need not exist. Throws a UserError.
 */
export function assertInsideRoots(p: string, what: string, root?: Roots): string {
  const abs = path.resolve(p);
  const roots = rootList(root);
  if (!roots) return abs;
  if (!roots.some((r) => isInside(r, abs)))
    throw outside(p, what, roots, false, { rootName: roots.length === 1 ? 'the workspace folder' : 'the workspace folders' });
  let existing = abs;
  while (!realOrNull(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  const real = realOrNull(existing);
  const realRoots = roots.map((r) => realOrNull(r) ?? r);
  if (real && !realRoots.some((r) => isInside(r, real)))
    throw outside(p, what, roots, true, { rootName: roots.length === 1 ? 'the workspace folder' : 'the workspace folders' });
  return abs;
}
