/**
 * The CLI facing bad flags, bad files and signals: a clear message and exit code 2 for the user's
 * mistakes (no stack trace unless --verbose), and Ctrl-C / SIGTERM cancelling a run at any phase
 * with exit code 130 / 143, the word "cancelled", and no result or temporary file left.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { canMakeFifo } from '../helpers/bad-inputs';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'src', 'cli', 'main.ts');
const DEMO = {
  model: path.join(ROOT, 'demo', 'fashion-cnn.onnx'),
  data: path.join(ROOT, 'demo', 'data', 't10k-images-idx3-ubyte.gz'),
  labels: path.join(ROOT, 'demo', 'data', 't10k-labels-idx1-ubyte.gz'),
};
const dir = mkdtempSync(path.join(tmpdir(), 'rlab-hostile-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const STACK = /\n\s+at .+:\d+:\d+/;

function cli(args: string[], env: Record<string, string> = {}): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

const evaluate = (...extra: string[]) => ['evaluate', '--model', DEMO.model, '--data', DEMO.data, '--labels', DEMO.labels, '--limit', '20', ...extra];

// Every form is covered by the unit test of src/cli/args.ts in hostile-misc; these check the whole path.
test('number lists with empty items, non-finite numbers and non-integer seeds are refused before any work', () => {
  for (const [args, message] of [
    [evaluate('--attack', 'fgsm', '--eps', '0.1,'), /--eps .*'0\.1,'.*item 2 is empty/],
    [evaluate('--attack', 'fgsm', '--eps', '0.1,Infinity'), /--eps .*Infinity/],
    [evaluate('--scale', '0x10'), /--scale must be a finite decimal number/],
    [evaluate('--seed', '1.5'), /--seed must be a whole number/],
  ] as const) {
    const r = cli([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, STACK, 'no stack trace');
  }
});

test('a bad model file is a one-line error; --verbose adds the stack trace', () => {
  const junk = path.join(dir, 'junk.onnx');
  writeFileSync(junk, 'definitely not protobuf \xff\xff\xff\xff');
  const plain = cli(['inspect', junk]);
  assert.equal(plain.code, 2);
  assert.match(plain.stderr, /junk\.onnx' is not a valid ONNX model/);
  assert.doesNotMatch(plain.stderr, STACK);
  const verbose = cli(['inspect', junk, '--verbose']);
  assert.equal(verbose.code, 2);
  assert.match(verbose.stderr, /junk\.onnx' is not a valid ONNX model/);
  assert.match(verbose.stderr, STACK, '--verbose shows where it came from');
});

test('a FIFO given as the model is refused at once', { skip: !canMakeFifo() }, () => {
  const fifo = path.join(dir, 'pipe.onnx');
  spawnSync('mkfifo', [fifo]);
  const t0 = Date.now();
  const r = cli(['inspect', fifo]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /pipe\.onnx' is a named pipe/);
  assert.ok(Date.now() - t0 < 20_000);
});

test('--out that is a folder or lies under a file is refused before the run (checkWritableOut)', () => {
  const file = path.join(dir, 'a-file');
  writeFileSync(file, 'x');
  // The evaluation itself checks --out only at the end unless the command calls checkWritableOut
  // first; either way the message is plain and nothing is left.
  for (const out of [dir, path.join(file, 'result.json')]) {
    const r = cli(evaluate('--out', out));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /folder|file, not a folder|Cannot write/);
    assert.doesNotMatch(r.stderr, STACK);
  }
});

/** Starts a long evaluation, sends `signal` once stderr matches `when`, and reports how it ended. */
function cancelRun(
  signal: NodeJS.Signals,
  when: RegExp,
  out: string,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, ...evaluate('--limit', '300', '--attack', 'square', '--queries', '5000', '--eps', '0.05', '--out', out)],
      {
        cwd: ROOT,
        env: { ...process.env, RLAB_CANCEL_GRACE_MS: '1500' },
      },
    );
    let stderr = '';
    let sentAt = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the run did not end: ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (!sentAt && when.test(stderr)) {
        sentAt = Date.now();
        child.kill(signal);
      }
    });
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code, signal: sig, stderr, ms: sentAt ? Date.now() - sentAt : -1 });
    });
  });
}

for (const [signal, code, when, phase] of [
  ['SIGINT', 130, /^Model /m, 'while the data loads'],
  ['SIGINT', 130, /^Attack /m, 'during an attack'],
  ['SIGTERM', 143, /^Model /m, 'while the data loads'],
  ['SIGTERM', 143, /^Attack /m, 'during an attack'],
] as const) {
  test(`${signal} ${phase}: exit ${code}, "cancelled", no result and no temporary file`, async () => {
    const runDir = mkdtempSync(path.join(dir, 'run-'));
    const out = path.join(runDir, 'result.json');
    const r = await cancelRun(signal, when, out);
    assert.ok(r.ms >= 0, `the run ended before ${when}: ${r.stderr}`);
    assert.equal(r.code, code, `exit code (signal ${r.signal}); stderr: ${r.stderr}`);
    assert.match(r.stderr, /cancel/i);
    assert.doesNotMatch(r.stderr, STACK);
    assert.doesNotMatch(r.stderr, /AbortError|DOMException/);
    assert.ok(!existsSync(out), 'no result file');
    assert.deepEqual(readdirSync(runDir), [], 'no temporary file');
  });
}
