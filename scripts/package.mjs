// Builds a platform-specific VSIX: `npm run package` for this machine's platform, or
// `npm run package -- --target win32-x64` (linux-x64, linux-arm64, darwin-x64, darwin-arm64,
// win32-x64, win32-arm64). The extension is packaged from a staging folder that holds only what
// runs: the bundles, media, the demo, and onnxruntime-node with the native files of the target
// platform alone (the other platforms' binaries are ~250 MB and stay in node_modules).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = ['linux-x64', 'linux-arm64', 'darwin-x64', 'darwin-arm64', 'win32-x64', 'win32-arm64'];

const argTarget = process.argv.indexOf('--target');
const target = argTarget >= 0 ? process.argv[argTarget + 1] : `${process.platform}-${process.arch}`;
if (!TARGETS.includes(target)) {
  console.error(`Unsupported target '${target}'. Use one of: ${TARGETS.join(', ')}`);
  process.exit(2);
}
const [platform, arch] = target.split('-');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const stage = path.join(ROOT, '.vscode-test', 'vsix-staging', target);
const out = path.join(ROOT, `${pkg.name}-${pkg.version}-${target}.vsix`);

const noMaps = (src) => !src.endsWith('.map');
const copy = (from, to, filter = noMaps) => cpSync(path.join(ROOT, from), path.join(stage, to ?? from), { recursive: true, filter });

console.log(`Building (production) …`);
execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs'), '--production'], { cwd: ROOT, stdio: 'inherit' });

rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
copy('dist');
copy('media');
copy('README.md');
for (const f of ['fashion-cnn.onnx', 'fashion-cnn.md', 'data']) copy(path.join('demo', f));

// onnxruntime-node: its JS, and bin/napi-v*/<platform>/<arch> only. Its install-time dependencies
// (adm-zip, global-agent) and its postinstall are dropped from the packaged copy's manifest.
const ortSrc = path.join(ROOT, 'node_modules', 'onnxruntime-node');
const ortPkg = JSON.parse(readFileSync(path.join(ortSrc, 'package.json'), 'utf8'));
const ortDest = path.join('node_modules', 'onnxruntime-node');
copy(path.join(ortDest, 'dist'));
let natives = 0;
for (const napi of readdirSync(path.join(ortSrc, 'bin'))) {
  const dir = path.join(ortDest, 'bin', napi, platform, arch);
  if (!existsSync(path.join(ROOT, dir))) continue;
  copy(dir);
  natives++;
}
if (!natives) throw new Error(`onnxruntime-node ${ortPkg.version} has no native binaries for ${target}.`);
const { scripts: _s, devDependencies: _d, ...ortManifest } = ortPkg;
ortManifest.dependencies = { 'onnxruntime-common': ortPkg.dependencies['onnxruntime-common'] };
writeFileSync(path.join(stage, ortDest, 'package.json'), JSON.stringify(ortManifest, null, 2));
for (const f of ['package.json', 'dist', 'LICENSE']) {
  if (existsSync(path.join(ROOT, 'node_modules', 'onnxruntime-common', f)))
    copy(path.join('node_modules', 'onnxruntime-common', f), undefined, (src) => noMaps(src) && !src.endsWith('.d.ts'));
}

// The packaged manifest: runtime dependencies only (everything else is bundled by esbuild).
const { scripts: _scripts, devDependencies: _dev, optionalDependencies: _opt, bin: _bin, ...manifest } = pkg;
manifest.dependencies = { 'onnxruntime-node': ortPkg.version };
writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2));
writeFileSync(path.join(stage, '.vscodeignore'), ['**/*.map', '**/*.d.ts', 'dist/cli.js', 'node_modules/**/README.md', 'node_modules/**/*.md', ''].join('\n'));
if (existsSync(path.join(ROOT, 'LICENSE'))) copy('LICENSE');

const vsce = path.join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
execFileSync(
  process.execPath,
  [
    vsce,
    'package',
    '--target',
    target,
    '--out',
    out,
    '--no-update-package-json',
    '--allow-missing-repository',
    '--skip-license',
    '--no-rewrite-relative-links',
  ],
  { cwd: stage, stdio: 'inherit' },
);
const mb = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(`\n${path.relative(ROOT, out)}: ${mb} MB (target ${target})`);
