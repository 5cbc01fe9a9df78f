#!/usr/bin/env node
// Finds import cycles in src/ (type-only imports included) and imports across the boundaries the
// design draws: src/core never imports 'vscode' nor the front ends; src/protocol imports nothing
// from src/core; src/core/onnx is pure graph code (no sessions) and src/core/model runs none either;
// the extension reaches the engine only through the worker (no src/core imports);
// the webview imports no Node built-ins. Exits 1 and prints each problem.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dirs = ['src', 'webview-ui/src'];
const files = [];
const walk = (d) => {
  for (const name of readdirSync(d)) {
    const p = path.join(d, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (/\.tsx?$/.test(name) && !name.endsWith('.d.ts')) files.push(p);
  }
};
for (const d of dirs) walk(path.join(root, d));

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]/g;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function resolve(from, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(from), spec);
  for (const c of [base, `${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts')]) {
    try {
      if (statSync(c).isFile()) return c;
    } catch {
      // not there: try the next candidate
    }
  }
  return undefined;
}

const rel = (p) => path.relative(root, p);
const graph = new Map();
const problems = [];
const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
for (const f of files) {
  const text = readFileSync(f, 'utf8');
  const specs = [...text.matchAll(IMPORT), ...text.matchAll(DYNAMIC)].map((m) => m[1]);
  const r = rel(f);
  const deps = [];
  for (const spec of specs) {
    const target = resolve(f, spec);
    if (target) deps.push(target);
    const t = target ? rel(target) : spec;
    if (r.startsWith('src/core/') && (spec === 'vscode' || /^src\/(extension|cli|worker)\//.test(t))) problems.push(`${r}: the engine imports ${spec}`);
    if (r.startsWith('src/protocol/') && t.startsWith('src/core/')) problems.push(`${r}: the protocol imports the engine (${spec})`);
    // ONNX graph code is pure: no sessions, no evaluation, no model inspection above it.
    if (r.startsWith('src/core/onnx/') && /^src\/core\/(runtime|model|eval|defenses|attacks|train|tfjs|data)\//.test(t))
      problems.push(`${r}: graph code imports ${t}; sessions and evaluation live above src/core/onnx`);
    if (r.startsWith('src/core/model/') && /^src\/core\/(runtime|eval|defenses|attacks)\//.test(t)) problems.push(`${r}: the model description imports ${t}`);
    if (r.startsWith('src/extension/') && t.startsWith('src/core/'))
      problems.push(`${r}: the extension imports the engine (${spec}); go through the worker and src/protocol`);
    if (r.startsWith('webview-ui/') && (builtins.has(spec) || spec === 'vscode' || t.startsWith('src/core/')))
      problems.push(`${r}: the webview imports ${spec}`);
  }
  graph.set(f, deps);
}

// Cycles: depth-first search with colours; report each cycle once by its smallest rotation.
const state = new Map();
const stack = [];
const seen = new Set();
function visit(f) {
  state.set(f, 1);
  stack.push(f);
  for (const d of graph.get(f) ?? []) {
    if (state.get(d) === 1) {
      const cycle = stack.slice(stack.indexOf(d)).map(rel);
      const start = cycle.indexOf([...cycle].sort()[0]);
      const key = [...cycle.slice(start), ...cycle.slice(0, start)].join(' → ');
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`import cycle: ${key} → ${cycle[start]}`);
      }
    } else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 2);
}
for (const f of files) if (!state.has(f)) visit(f);

if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`\n${problems.length} import problem(s) in ${files.length} files.`);
  process.exit(1);
}
console.log(`check-imports: ${files.length} files, no import cycle, no boundary crossed.`);
