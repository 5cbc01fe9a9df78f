// `npm run test:vscode`: the extension-host checks in VS Code desktop through @vscode/test-electron.
// NEEDS THE NETWORK: test-electron downloads VS Code (into .vscode-test/). Where that is not
// possible, `npm run test:e2e` (code-server, no download) covers the same and more through the UI.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';
import { ROOT, prepareDemoWorkspace } from '../../../scripts/code-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = path.join(ROOT, 'test-artifacts', 'vscode');
rmSync(base, { recursive: true, force: true });
const workspace = prepareDemoWorkspace(path.join(base, 'workspace'));
const data = { data: 'data/t10k-images-idx3-ubyte.gz', labels: 'data/t10k-labels-idx1-ubyte.gz' };
writeFileSync(
  path.join(workspace, 'quick.rlab.json'),
  JSON.stringify({ model: 'fashion-cnn.onnx', ...data, limit: 200, attacks: { names: ['fgsm'], eps: [0.05], norm: 'linf' } }),
);
writeFileSync(
  path.join(workspace, 'long.rlab.json'),
  JSON.stringify({ model: 'fashion-cnn.onnx', ...data, attacks: { names: ['pgd'], eps: [0.01, 0.03, 0.1], norm: 'linf', steps: 200 } }),
);
mkdirSync(path.join(base, 'user-data'), { recursive: true });

try {
  await runTests({
    version: process.env.VSCODE_VERSION ?? 'stable',
    extensionDevelopmentPath: ROOT,
    extensionTestsPath: path.join(here, 'suite.cjs'),
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust', '--user-data-dir', path.join(base, 'user-data')],
    extensionTestsEnv: { RLAB_TEST_WORKSPACE: workspace },
  });
} catch (e) {
  console.error(`test:vscode failed: ${e instanceof Error ? e.message : e}`);
  console.error('(This suite downloads VS Code and needs the network; npm run test:e2e runs without it.)');
  process.exit(1);
}
