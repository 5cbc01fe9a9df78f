// `npm run serve [-- --port 8080]`: code-server (a real VS Code in the browser) with the freshly
// built extension installed and a workspace holding the demo model, data and experiment.
// Installs code-server into .vscode-test/ on first use. Ctrl-C stops it.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, defaultVsix, freePort, installVsix, prepareDemoWorkspace, prepareUserData, startCodeServer } from './code-server.mjs';

const portArg = process.argv.indexOf('--port');
const wanted = Number(portArg >= 0 ? process.argv[portArg + 1] : (process.env.PORT ?? 8080));

execFileSync('bash', [path.join(ROOT, 'scripts', 'install-code-server.sh')], { stdio: 'inherit' });
execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'package.mjs')], { stdio: 'inherit' });

const base = path.join(ROOT, '.vscode-test', 'serve');
const workspace = path.join(base, 'workspace');
if (!existsSync(workspace)) {
  // Kept between runs, so experiments and results made while trying things out survive.
  prepareDemoWorkspace(workspace);
  cpSync(path.join(ROOT, 'media', 'demo', 'fashion-cnn-fgsm.rlab.json'), path.join(workspace, 'fashion-cnn-fgsm.rlab.json'));
}
const userDataDir = path.join(base, 'user-data');
const extensionsDir = path.join(base, 'extensions');
prepareUserData(userDataDir);
installVsix(defaultVsix(), extensionsDir, userDataDir);

const port = await freePort().then((free) => (Number.isInteger(wanted) && wanted > 0 ? wanted : free));
const server = await startCodeServer({ userDataDir, extensionsDir, port, log: (line) => process.env.RLAB_VERBOSE && console.log(line) });
console.log(`\nRobustness Lab in code-server: ${server.folderUrl(workspace)}\n(workspace ${path.relative(ROOT, workspace)}; Ctrl-C to stop)`);
const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
server.process.on('exit', (code) => {
  console.error(`code-server exited (${code}).`);
  process.exit(code ?? 1);
});
