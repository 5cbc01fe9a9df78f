/**
 * Hostile workspaces, the rest: atomic writes (stale temporary files, the cancel guard, the --out
 * pre-flight check), the results folder staying inside the workspace, reports escaping what models
 * and datasets name, flag parsing, onnxruntime messages, and the compute process starting in the
 * workspace folder with its allowed roots.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { integer, numberList, number, safetyFromFlags, seed } from '../../src/cli/args';
import { isPlainFileName } from '../../src/core/defenses/cache';
import { UserError } from '../../src/core/errors';
import { checkWritableOut, cleanStaleTemps, guardWrites, writeFileAtomic, writeJsonAtomic } from '../../src/core/fs-atomic';
import { isInside } from '../../src/core/paths';
import { plainOrtMessage } from '../../src/core/runtime/session';
import { Inspector, WorkerError, WorkerProcess } from '../../src/extension/worker-client';
import type { RunResult } from '../../src/protocol/run-result';
import { renderHtml } from '../../src/report/html';
import { escapeMarkdown, markdownCode, renderMarkdown } from '../../src/report/markdown';
import { parseLaunchArgs, resultsFolderInside } from '../../src/worker/launch';
import { canMakeFifo, paths, writeCorpus } from '../helpers/bad-inputs';

const ROOT = path.resolve(__dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'rlab-hostile-misc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sub = (name: string) => {
  const d = path.join(dir, name);
  mkdirSync(d, { recursive: true });
  return d;
};
const userError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);

// ─── Atomic writes ──────────────────────────────────────────────────────────────────────────────

test('a write into a results folder removes temporary files a killed run left (older than an hour), and nothing else', () => {
  const results = sub('results');
  const old = (Date.now() - 2 * 3600_000) / 1000;
  const stale = ['run-1.json.123.1700000000000.tmp', 'x.onnx.9.1.tmp'];
  for (const name of stale) {
    writeFileSync(path.join(results, name), 'half');
    utimesSync(path.join(results, name), old, old);
  }
  writeFileSync(path.join(results, 'running.json.77.1.tmp'), 'in progress'); // fresh: another run is writing it
  writeFileSync(path.join(results, 'notes.tmp'), 'not ours'); // not our naming
  utimesSync(path.join(results, 'notes.tmp'), old, old);
  mkdirSync(path.join(results, 'folder.1.2.tmp'));
  utimesSync(path.join(results, 'folder.1.2.tmp'), old, old);
  const target = path.join(dir, 'keep-me');
  writeFileSync(target, 'precious');
  symlinkSync(target, path.join(results, 'link.1.2.tmp'));

  writeJsonAtomic(path.join(results, 'run-2.json'), { ok: true });
  const names = readdirSync(results).sort();
  assert.deepEqual(names, ['folder.1.2.tmp', 'link.1.2.tmp', 'notes.tmp', 'run-2.json', 'running.json.77.1.tmp']);
  assert.ok(existsSync(target), 'a link is never followed');
  assert.deepEqual(cleanStaleTemps(results, 0), ['running.json.77.1.tmp'], 'age 0 takes the fresh one too');
});

test('after the cancel signal fires, atomic writes refuse (AbortError) and leave nothing', () => {
  const out = sub('guarded');
  const controller = new AbortController();
  guardWrites(controller.signal);
  try {
    writeFileAtomic(path.join(out, 'a.json'), '{}');
    controller.abort();
    assert.throws(
      () => writeFileAtomic(path.join(out, 'b.json'), '{}'),
      (e: unknown) => (e as Error).name === 'AbortError',
    );
    assert.deepEqual(readdirSync(out), ['a.json']);
  } finally {
    guardWrites(undefined);
  }
});

test('writing over a folder is a UserError, and no temporary file stays', () => {
  const out = sub('over-folder');
  mkdirSync(path.join(out, 'result.json'));
  assert.throws(() => writeJsonAtomic(path.join(out, 'result.json'), {}), userError(/Cannot write .*result\.json/));
  assert.deepEqual(readdirSync(out), ['result.json']);
});

test('checkWritableOut: folders, paths under files, special files and unwritable folders are refused before a run', () => {
  const base = sub('out-check');
  const file = path.join(base, 'file.txt');
  writeFileSync(file, 'x');
  assert.equal(checkWritableOut(path.join(base, 'r.json')), path.join(base, 'r.json'));
  assert.equal(checkWritableOut(file), file, 'an existing file is replaced');
  assert.equal(checkWritableOut(path.join(base, 'new', 'deeper', 'r.json')), path.join(base, 'new', 'deeper', 'r.json'), 'missing folders are created later');
  assert.throws(() => checkWritableOut(base), userError(/is a folder/));
  assert.throws(() => checkWritableOut(`${base}${path.sep}`), userError(/names a folder/));
  assert.throws(() => checkWritableOut(path.join(file, 'r.json')), userError(/which is a file, not a folder|under a file/));
  assert.throws(() => checkWritableOut(path.join(file, 'a', 'r.json')), userError(/which is a file, not a folder|under a file/));
  assert.throws(() => checkWritableOut(''), userError(/must name a file/));
  assert.throws(() => checkWritableOut(base, '--report'), userError(/^--report /));
  if (canMakeFifo()) {
    const fifo = path.join(base, 'fifo');
    execFileSync('mkfifo', [fifo]);
    assert.throws(() => checkWritableOut(fifo), userError(/not a regular file/));
  }
  if (process.getuid?.() !== 0) {
    const ro = sub('read-only');
    chmodSync(ro, 0o555);
    assert.throws(() => checkWritableOut(path.join(ro, 'r.json')), userError(/not writable/));
  }
});

// ─── The results folder setting ─────────────────────────────────────────────────────────────────

test('resultsFolderInside keeps the results folder inside the workspace, links included', () => {
  const ws = sub('ws-results');
  const outside = sub('elsewhere');
  symlinkSync(outside, path.join(ws, 'linked'));
  assert.equal(resultsFolderInside(ws, undefined), path.join(ws, 'rlab-results'));
  assert.equal(resultsFolderInside(ws, '  '), path.join(ws, 'rlab-results'));
  assert.equal(resultsFolderInside(ws, 'out/runs'), path.join(ws, 'out', 'runs'));
  assert.equal(resultsFolderInside(ws, path.join(ws, 'abs')), path.join(ws, 'abs'));
  assert.throws(() => resultsFolderInside(ws, '../escape'), /outside the workspace folder/);
  assert.throws(() => resultsFolderInside(ws, 'a/../../escape'), /outside the workspace folder/);
  assert.throws(() => resultsFolderInside(ws, outside), /outside the workspace folder/);
  assert.throws(() => resultsFolderInside(ws, 'linked'), /symbolic link/);
  assert.throws(() => resultsFolderInside(ws, 'linked/deeper/runs'), /symbolic link/);
  assert.equal(resultsFolderInside(ws, '..data'), path.join(ws, '..data'), "a name starting with '..' is inside");
});

test('isInside and plain cache file names', () => {
  assert.ok(isInside('/a/b', '/a/b'));
  assert.ok(isInside('/a/b', '/a/b/c'));
  assert.ok(isInside('/a/b', '/a/b/..c'));
  assert.ok(!isInside('/a/b', '/a/bc'));
  assert.ok(!isInside('/a/b', '/a'));
  assert.ok(!isInside('/a/b', '/a/b/../c'.replace('/b/../', '/')));
  for (const ok of ['lesci-abc.onnx', 'x']) assert.ok(isPlainFileName(ok), ok);
  for (const bad of ['', '.', '..', '../x', 'a/b', 'a\\b', '/abs', 'C:x', 'nul\0byte', 42, null]) assert.ok(!isPlainFileName(bad), String(bad));
});

// ─── Reports ────────────────────────────────────────────────────────────────────────────────────

const EVIL = {
  script: '<script>alert(1)</script>',
  img: '![x](https://evil.example/beacon.png)',
  link: '[click](javascript:alert(1))',
  html: '<img src=x onerror=alert(1)>',
  pipe: 'a|b\n# heading',
};

function hostileResult(): RunResult {
  const names = [EVIL.script, EVIL.img, EVIL.link];
  return {
    schemaVersion: 2,
    tool: { name: 'robustness-lab', version: '<b>1</b>' },
    createdAt: '"><script>x</script>',
    model: { path: `models/${EVIL.html}.onnx`, sha256: 'x', input: 'x', output: 'y', inputShape: [1, 1, 2, 2], opset: 13 },
    dataset: {
      format: 'folder',
      path: `data/${EVIL.pipe}`,
      count: 3,
      sha256: 'y',
      sampleShape: [1, 2, 2],
      classNames: names,
      preprocessing: { scale: 1, layout: 'NCHW' },
    },
    seed: 0,
    runtime: { executionProvider: 'cpu', requested: 'auto', threads: 1, batchSize: 10 },
    timings: { loadSeconds: 0, cleanSeconds: 0, totalSeconds: 0, cleanImagesPerSecond: 0 },
    clean: {
      accuracy: 0.5,
      correct: 1,
      count: 2,
      confusion: [
        [1, 0, 0],
        [0, 1, 0],
        [0, '<i>0</i>', 1],
      ],
    },
    attacks: [{ attack: EVIL.script, threat: 'whitebox', norm: 'linf', eps: 0.1, accuracy: 0.25, successRate: 0.5 }],
    defense: { kind: EVIL.html, layer: 'layer`with``ticks`', verdict: EVIL.link, params: { note: EVIL.img } },
    examples: [
      {
        index: '<svg onload=alert(1)>',
        label: 0,
        cleanPrediction: 1,
        adversarialPrediction: 2,
        attack: EVIL.script,
        threat: 'whitebox',
        eps: 0.1,
        shape: [1, 2, 2],
        clean: [0, 0.5, 1, 0],
        adversarial: [0, 0.5, 1, 0.1],
      },
    ],
  } as unknown as RunResult;
}

test('HTML reports escape every string that came from a model, a dataset or a result file', () => {
  const html = renderHtml([{ name: EVIL.script, result: hostileResult() }]);
  assert.ok(!/<script>alert|<img src=x|<svg onload|<i>0<\/i>|"><script>|<b>1<\/b>/i.test(html), 'no markup survives');
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'shown as text');
  assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  assert.equal((html.match(/<script/gi) ?? []).length, 0);
});

test('Markdown reports escape links, images, HTML, tables and code fences from names and paths', () => {
  const { markdown } = renderMarkdown([{ name: EVIL.link, result: hostileResult() }], { chartFile: 'chart (1).svg' });
  assert.doesNotMatch(markdown, /(^|[^\\])!\[x\]\(https/, 'no remote image');
  assert.doesNotMatch(markdown, /(^|[^\\])\[click\]\(javascript/, 'no link');
  assert.doesNotMatch(markdown, /(^|[^\\])<(script|img)/, 'no raw HTML');
  assert.doesNotMatch(markdown, /https:\/\/evil/, 'no autolink');
  assert.doesNotMatch(markdown, /\n# heading/, 'no injected heading (newlines are flattened)');
  assert.match(markdown, /!\[Robust accuracy against epsilon\]\(chart%20%281%29\.svg\)/, 'the chart link stays one link');
  assert.ok(markdown.includes('``` layer`with``ticks` ```'), 'a layer name with backticks stays one code span');
  const modelRow = markdown.split('\n').find((l) => l.startsWith('| model |'))!;
  assert.equal(modelRow.replace(/\\\|/g, '').split('|').length, 4, `the path's '|' does not add a column: ${modelRow}`);
  assert.equal(escapeMarkdown('a_b*c'), 'a\\_b\\*c');
  assert.equal(escapeMarkdown('see http://x.y and www.z.com'), 'see http\\://x.y and www\\.z.com');
  assert.equal(markdownCode('a`b'), '``a`b``');
  assert.equal(escapeMarkdown('0.25 (1 / 2) – 90.8%').replace(/\\/g, ''), '0.25 (1 / 2) – 90.8%');
});

// ─── Flags ──────────────────────────────────────────────────────────────────────────────────────

test('flag parsing: empty list items, non-finite and non-decimal numbers, integer seeds', () => {
  assert.deepEqual(numberList({ eps: '0.01, 0.03,1e-2' }, 'eps'), [0.01, 0.03, 0.01]);
  for (const bad of ['0.1,', ',0.1', '0.1,,0.2', '', ' ', '0.1,NaN', 'Infinity', '0x10', '1/2']) {
    assert.throws(() => numberList({ eps: bad }, 'eps'), userError(/--eps/), bad);
  }
  assert.equal(number({ s: '-1.5e-3' }, 's'), -0.0015);
  for (const bad of ['', 'Infinity', '-Infinity', 'NaN', '0b1', '1,5']) assert.throws(() => number({ s: bad }, 's'), userError(/--s/), bad);
  assert.equal(seed({ seed: '4294967295' }), 4294967295);
  for (const bad of ['1.5', '-1', '4294967296', '1e3', '', 'abc']) assert.throws(() => seed({ seed: bad }), userError(/--seed/), bad);
  assert.equal(integer({ n: '007' }, 'n', 0), 7);
  for (const bad of ['-1', '0', '', '1e2', '2.0', '0x10']) assert.throws(() => integer({ batch: bad }, 'batch', 100, 1), userError(/--batch/), bad);
  assert.throws(() => integer({ n: '9007199254740993' }, 'n', 0), userError(/--n/));
  assert.deepEqual(safetyFromFlags({ 'max-decompressed-mb': '64', 'allow-nonfinite': true }), { maxDecompressedBytes: 64 * 1024 ** 2, allowNonFinite: true });
  assert.throws(() => safetyFromFlags({ 'max-decompressed-mb': '0' }), userError(/positive/));
});

// ─── onnxruntime messages ───────────────────────────────────────────────────────────────────────

test("onnxruntime's messages lose C++ file names and signatures but keep the node", () => {
  const m = plainOrtMessage(
    new Error(
      "Non-zero status code returned while running Reshape node. Name:'/features/Reshape' Status Message: /onnxruntime_src/onnxruntime/core/providers/cpu/tensor/reshape_helper.h:91 onnxruntime::ReshapeHelper::ReshapeHelper(const onnxruntime::TensorShape&, onnxruntime::TensorShapeVector&, bool) input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped to the requested shape. Input shape:{2,5}, requested shape:{2,3}\n",
    ),
  );
  assert.equal(m.node, '/features/Reshape');
  assert.equal(m.op, 'Reshape');
  assert.equal(m.detail, 'The input tensor cannot be reshaped to the requested shape. Input shape:{2,5}, requested shape:{2,3}');
  const n = plainOrtMessage(
    new Error(
      'This is an invalid model. In Node, ("FooBar_0", FooBar, "", -1) : ("x": tensor(float),) -> ("y": tensor(float),) , Error No Op registered for FooBar with domain_version of 13',
    ),
  );
  assert.deepEqual(n, { detail: 'No Op registered for FooBar with domain_version of 13', node: 'FooBar_0', op: 'FooBar' });
});

// ─── The compute process ────────────────────────────────────────────────────────────────────────

test('the worker client starts the compute process in the workspace folder with its roots, and restarts it when they change', async () => {
  const ws = sub('ws-worker');
  const other = sub('ws-other');
  const script = path.join(dir, 'echo-worker.js');
  writeFileSync(
    script,
    "process.on('message', (m) => process.send({ type: 'inspected', id: m.id, model: { cwd: process.cwd(), argv: process.argv.slice(2) } }));\nprocess.on('disconnect', () => process.exit(0));\n",
  );
  let launch = { cwd: ws, roots: [ws] };
  const inspector = new Inspector(script, undefined, () => launch);
  try {
    const a = (await inspector.inspect('m.onnx')) as unknown as { cwd: string; argv: string[] };
    assert.equal(a.cwd, ws);
    assert.deepEqual(parseLaunchArgs(a.argv).roots, [ws]);
    assert.ok(a.argv.includes('--role=inspect'));
    launch = { cwd: other, roots: [other, ws] };
    const b = (await inspector.inspect('m.onnx')) as unknown as { cwd: string; argv: string[] };
    assert.equal(b.cwd, other, 'a new process for the new layout');
    assert.deepEqual(parseLaunchArgs(b.argv).roots, [other, ws]);
    launch = { cwd: path.join(dir, 'does-not-exist'), roots: [] };
    const c = (await inspector.inspect('m.onnx')) as unknown as { cwd: string; argv: string[] };
    assert.ok(c.cwd, 'a missing folder is left out instead of failing the start');
  } finally {
    inspector.dispose();
  }
});

test('the real compute process refuses a model outside its roots and inspects one inside', async () => {
  const corpus = sub('worker-corpus');
  writeCorpus(corpus);
  const p = paths(corpus);
  const worker = new WorkerProcess(path.join(ROOT, 'src', 'worker', 'worker.ts'), 'inspect', 0, () => {}, {
    cwd: p.ws,
    roots: [p.ws],
    // tsx by absolute URL: the child's working directory is the workspace, where no node_modules is.
    execArgv: ['--import', pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href],
  });
  try {
    await assert.rejects(
      worker.request({ type: 'inspect', model: path.join(p.m, 'link-model.onnx') }).result,
      (e: unknown) => e instanceof WorkerError && e.kind === 'user' && /symbolic link/.test(e.message) && !/\n\s+at /.test(e.message),
    );
    await assert.rejects(
      worker.request({ type: 'inspect', model: p.sentinelModel }).result,
      (e: unknown) => e instanceof WorkerError && e.kind === 'user' && /leaves the allowed folder/.test(e.message),
    );
    const summary = await worker.request({ type: 'inspect', model: path.join('m', 'plain.onnx') }).result;
    assert.ok((summary as { layers: unknown[] }).layers.length >= 2, 'a relative path resolves against the workspace folder (the cwd)');
  } finally {
    worker.dispose();
  }
  assert.ok(lstatSync(p.sentinel).isFile());
});

test('package.json: the settings a workspace could abuse are restricted in Restricted Mode, and the results folder rejects ..', () => {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const restricted: string[] = pkg.capabilities.untrustedWorkspaces.restrictedConfigurations;
  for (const key of [
    'robustnessLab.resultsFolder',
    'robustnessLab.executionProvider',
    'robustnessLab.threads',
    'robustnessLab.lanes',
    'robustnessLab.batchSize',
  ])
    assert.ok(restricted.includes(key), key);
  const configs = Array.isArray(pkg.contributes.configuration) ? pkg.contributes.configuration : [pkg.contributes.configuration];
  const setting = configs.map((c: { properties: Record<string, { pattern?: string }> }) => c.properties['robustnessLab.resultsFolder']).find(Boolean);
  const pattern = new RegExp(setting.pattern);
  for (const ok of ['rlab-results', 'out/runs', '..data']) assert.ok(pattern.test(ok), ok);
  for (const bad of ['..', '../x', 'a/../../b', 'a\\..\\b']) assert.ok(!pattern.test(bad), bad);
});
