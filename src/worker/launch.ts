/**
 * How the compute process is started: the extension forks it with its working directory set to the
 * workspace folder and the folders it may read from as `--root=<folder>` arguments; and where in
 * the workspace it may write results. No 'vscode', no engine (the extension may not import
 * src/core): shared by the worker (parse) and the extension (build, results folder).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';

export interface WorkerLaunch {
  /** Working directory of the process: the workspace folder (relative paths and anything onnxruntime resolves itself land there). */
  cwd?: string;
  /**
   * Folders every model, dataset and labels file must lie inside, symbolic links followed
   * (src/core/paths.ts setAllowedRoots). Empty or absent: no limit beyond the always-on rules
   * (external data inside the model's folder, cache entries inside the cache folder, regular files only).
   */
  roots?: readonly string[];
  /** Node flags for the child (tests run the TypeScript worker with ['--import', 'tsx']). Default none. */
  execArgv?: readonly string[];
}

const ROOT_FLAG = '--root=';

/** The arguments that carry `launch` to the worker (after the role). */
export function launchArgs(launch: WorkerLaunch): string[] {
  return (launch.roots ?? []).filter((r) => typeof r === 'string' && r !== '').map((r) => `${ROOT_FLAG}${r}`);
}

/** The roots the worker was started with (`--root=<folder>`, repeatable). */
export function parseLaunchArgs(argv: readonly string[]): { roots: string[] } {
  return {
    roots: argv
      .filter((a) => a.startsWith(ROOT_FLAG))
      .map((a) => a.slice(ROOT_FLAG.length))
      .filter((r) => r !== ''),
  };
}

/** True when `p` is `root` or inside it (both absolute). */
function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!path.isAbsolute(rel) && !/^\.\.(?:[\\/]|$)/.test(rel));
}

function realOrNull(p: string): string | null {
  try {
    return realpathSync(p);
  } catch {
    return null;
  }
}

/** The results folder setting names a place outside the workspace. `message` is for people. */
export class ResultsFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ResultsFolderError';
  }
}

/**
 * The results folder that the robustnessLab.resultsFolder setting names, checked to stay inside the
 * workspace folder: a relative setting is resolved against `workspaceRoot`, an absolute one must lie
 * inside it, and the deepest part of the path that exists must still be inside once symbolic links
 * are followed (a `rlab-results` link to ~/.ssh is refused). Folders that do not exist yet are fine.
 * Empty: `fallback`. Throws ResultsFolderError.
 */
export function resultsFolderInside(workspaceRoot: string, setting: string | undefined, fallback = 'rlab-results'): string {
  const value = (setting ?? '').trim() || fallback;
  const hint = ` Set robustnessLab.resultsFolder to a folder inside the workspace, e.g. '${fallback}'.`;
  if (value.includes('\0')) throw new ResultsFolderError(`The results folder setting ${JSON.stringify(value)} is not a valid path.${hint}`);
  const root = path.resolve(workspaceRoot);
  const target = path.resolve(root, value);
  if (!isInside(root, target)) throw new ResultsFolderError(`The results folder '${value}' lies outside the workspace folder '${root}'.${hint}`);
  let existing = target;
  while (!realOrNull(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  const realExisting = realOrNull(existing);
  const realRoot = realOrNull(root) ?? root;
  if (realExisting && !isInside(realRoot, realExisting)) {
    throw new ResultsFolderError(
      `The results folder '${value}' leads through a symbolic link ('${existing}') to a place outside the workspace folder '${root}'.${hint}`,
    );
  }
  return target;
}
