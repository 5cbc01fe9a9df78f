/**
 * The bad-input corpus (test/helpers/bad-inputs.ts), generated into a temporary folder and run in a
 * child process with a timeout, so a FIFO that blocks a read fails the test instead of hanging it.
 * Every case gets its expected outcome: a UserError naming the file (and never echoing the
 * content of a file outside the workspace), or a documented acceptance; no case opens anything
 * outside the workspace; no temporary file is left behind.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { corpusCases, paths, SENTINEL, SENTINEL_BIAS, writeCorpus, type CaseResult } from '../helpers/bad-inputs';

const ROOT = path.resolve(__dirname, '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'rlab-hostile-'));
const results = new Map<string, CaseResult>();
let childError = '';

before(() => {
  writeCorpus(dir);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test', 'helpers', 'bad-inputs.ts'), '--run', dir], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 45_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) childError = `child ${r.error ? `failed: ${r.error.message}` : `exited ${r.status}`}; stderr: ${r.stderr?.slice(-2000)}`;
  for (const line of (r.stdout ?? '').split('\n').filter(Boolean)) {
    const result = JSON.parse(line) as CaseResult;
    results.set(result.id, result);
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('the corpus runs to the end without blocking (no FIFO is ever opened for reading)', () => {
  assert.equal(childError, '', childError);
  assert.equal(results.size, corpusCases(dir).length, 'every case reported');
});

for (const c of corpusCases(dir)) {
  test(`[${c.group}] ${c.id}`, () => {
    const r = results.get(c.id);
    assert.ok(r, `no result (the child stopped before this case): ${childError}`);
    const outside = paths(dir).outside;
    const openedOutside = r.opened.filter((f) => f === outside || f.startsWith(outside + path.sep));
    assert.deepEqual(openedOutside, [], 'nothing outside the workspace is opened');
    if (c.expect === 'user-error') {
      assert.equal(r.outcome, 'error', `expected a UserError, but it was accepted${r.checkFailure ? ` (${r.checkFailure})` : ''}`);
      assert.equal(r.errorName, 'UserError', `expected a UserError, got ${r.errorName}: ${r.message}`);
      for (const m of c.mentions ?? []) {
        if (typeof m === 'string') assert.ok(r.message!.includes(m), `the message should mention ${JSON.stringify(m)}: ${r.message}`);
        else assert.match(r.message!, m);
      }
      assert.ok(!r.message!.includes(SENTINEL) && !r.message!.includes(SENTINEL_BIAS), 'the content of a file outside is never echoed');
      assert.doesNotMatch(r.message!, /onnxruntime::|\.(cc|cpp|h):\d|\n\s+at /, 'no C++ signatures or stack frames');
    } else {
      assert.equal(r.outcome, 'accept', `expected acceptance (${c.why}), got ${r.errorName}: ${r.message}`);
      assert.equal(r.checkFailure, undefined, r.checkFailure);
    }
    assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  });
}

test('no temporary file is left behind but the one a running write holds', () => {
  const leftovers: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p, { throwIfNoEntry: false })?.isDirectory() && !name.startsWith('link')) walk(p);
      else if (name.endsWith('.tmp')) leftovers.push(path.relative(dir, p));
    }
  };
  walk(path.join(dir, 'ws'));
  assert.deepEqual(leftovers, [path.join('ws', 'cache', 'fresh.json.4242.2000.tmp')]);
  assert.deepEqual(readdirSync(paths(dir).outside).sort(), ['bias.bin', 'data.npy', 'model.onnx', 'sentinel.bin'], 'nothing was written outside the workspace');
});
