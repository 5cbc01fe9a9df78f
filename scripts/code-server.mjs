// Starting code-server (a real VS Code with a Node extension host, installed by
// scripts/install-code-server.sh into .vscode-test/) with this extension installed from its VSIX.
// Used by `npm run serve` and by the end-to-end tests.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
export const CODE_SERVER_VERSION = process.env.RLAB_CODE_SERVER_VERSION ?? '4.139.1';
const CS_DIR = process.env.RLAB_CODE_SERVER_DIR ?? path.join(ROOT, '.vscode-test', `code-server-${CODE_SERVER_VERSION}`);

export function codeServerPaths() {
  const node = path.join(CS_DIR, 'node', 'node_modules', 'node', 'bin', 'node');
  const entry = path.join(CS_DIR, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  if (!existsSync(node) || !existsSync(entry)) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} is not installed in ${CS_DIR}. Run: bash scripts/install-code-server.sh`);
  }
  return { node, entry };
}

/** The VSIX `npm run package` builds for this platform. */
export function defaultVsix() {
  const target = `${process.platform}-${process.arch}`;
  return path.join(ROOT, `${pkg.name}-${pkg.version}-${target}.vsix`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function codeServer(args, options = {}) {
  const { node, entry } = codeServerPaths();
  // Node 24 first on PATH: code-server's own child processes (extension host) use it.
  const env = { ...process.env, PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}`, ...options.env };
  return { node, argv: [entry, ...args], env };
}

/** A fresh user-data dir with settings that keep the workbench quiet and deterministic. */
export function prepareUserData(userDataDir, settings = {}) {
  const user = path.join(userDataDir, 'User');
  mkdirSync(user, { recursive: true });
  const base = {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.welcomePage.walkthroughs.openOnInstall': false,
    'workbench.enableExperiments': false,
    'workbench.colorTheme': 'Default Dark Modern',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'chat.disableAIFeatures': true,
    'chat.commandCenter.enabled': false,
    'security.workspace.trust.startupPrompt': 'never',
    'security.workspace.trust.banner': 'always',
    'window.restoreWindows': 'none',
    'git.enabled': false,
    'git.openRepositoryInParentFolders': 'never',
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
  };
  writeFileSync(path.join(user, 'settings.json'), JSON.stringify({ ...base, ...settings }, null, 2));
}

/** Installs the VSIX into `extensionsDir` (idempotent per VSIX). */
export function installVsix(vsix, extensionsDir, userDataDir) {
  if (!existsSync(vsix)) throw new Error(`${vsix} does not exist. Run: npm run package`);
  mkdirSync(extensionsDir, { recursive: true });
  const { node, argv, env } = codeServer(['--extensions-dir', extensionsDir, '--user-data-dir', userDataDir, '--install-extension', vsix, '--force']);
  execFileSync(node, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const installed = readdirSync(extensionsDir).find((d) => d.startsWith(`${pkg.publisher}.${pkg.name}-`));
  if (!installed) throw new Error(`Installing ${vsix} left no ${pkg.publisher}.${pkg.name} folder in ${extensionsDir}.`);
  return path.join(extensionsDir, installed);
}

/**
 * Starts code-server on a free port; resolves once it answers. `trust: false` leaves Workspace
 * Trust on, so that a folder opens in Restricted Mode (the startup prompt is off in the settings).
 */
export async function startCodeServer({ userDataDir, extensionsDir, port, trust = true, log = () => {} }) {
  port ??= await freePort();
  const args = [
    '--auth',
    'none',
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-getting-started-override',
    '--user-data-dir',
    userDataDir,
    '--extensions-dir',
    extensionsDir,
    ...(trust ? ['--disable-workspace-trust'] : []),
  ];
  const { node, argv, env } = codeServer(args);
  const child = spawn(node, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: false });
  const lines = [];
  const capture = (chunk) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) {
      lines.push(line);
      log(line);
    }
  };
  child.stdout.on('data', capture);
  child.stderr.on('data', capture);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`code-server exited (${child.exitCode}):\n${lines.slice(-20).join('\n')}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`code-server did not answer on ${url} within 60 s:\n${lines.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    port,
    process: child,
    logLines: lines,
    /** The workbench URL for a folder. */
    folderUrl: (folder) => `${url}/?folder=${encodeURIComponent(folder)}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A workspace folder holding the demo model and data (copied, so tests can write into it). */
export function prepareDemoWorkspace(dir) {
  mkdirSync(dir, { recursive: true });
  cpSync(path.join(ROOT, 'demo', 'fashion-cnn.onnx'), path.join(dir, 'fashion-cnn.onnx'));
  cpSync(path.join(ROOT, 'demo', 'fashion-cnn.md'), path.join(dir, 'fashion-cnn.md'));
  cpSync(path.join(ROOT, 'demo', 'data'), path.join(dir, 'data'), { recursive: true });
  cpSync(path.join(ROOT, 'demo', 'tfjs', 'fashion-layers'), path.join(dir, 'tfjs', 'fashion-layers'), { recursive: true });
  return dir;
}
