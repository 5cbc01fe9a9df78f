// Bundles every entry point with esbuild. Native onnxruntime-node stays external: it is loaded
// from node_modules at run time (and shipped in the VSIX for the target platform only).
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  external: ['vscode', 'onnxruntime-node', '@tensorflow/tfjs-node'],
  logLevel: 'warning',
};

const builds = [
  { ...common, entryPoints: { extension: 'src/extension/extension.ts' }, outdir: 'dist' },
  { ...common, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist' },
  { ...common, entryPoints: { worker: 'src/worker/worker.ts' }, outdir: 'dist' },
  // Worker threads of OnnxLanes (src/core/runtime/lanes.ts), next to the bundles that start them.
  { ...common, entryPoints: { 'lane-worker': 'src/core/runtime/lane-worker.ts' }, outdir: 'dist' },
  // The webviews: browser bundles plus their CSS, in dist/webview/: the results panel (chart.js,
  // @vscode-elements), the model graph editor (dagre lays the graph out) and the runs table
  // (every run as a row; 2 to 7 compared, chart.js).
  {
    entryPoints: { main: 'webview-ui/src/main.ts', graph: 'webview-ui/src/graph.ts', 'runs-table': 'webview-ui/src/runs-table.ts' },
    outdir: 'dist/webview',
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
  },
];

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
