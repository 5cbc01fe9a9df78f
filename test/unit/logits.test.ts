// A model that ends in a Softmax is attacked at the Softmax's input: its results equal those of
// the same model without the Softmax (whose FGSM numbers test/unit/attacks-demo.test.ts checks
// against PyTorch), and the RunResult says which tensor the logits were.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runEvaluation } from '../../src/core/eval/evaluate';
import { decodeModel, encodeModel } from '../../src/core/onnx/proto';
import { tensorValueInfo } from '../../src/core/onnx/cut';
import { DEMO_MODEL, DEMO_TEST_IMAGES, DEMO_TEST_LABELS } from '../helpers/cli';

test('a final Softmax is skipped: the attacks see the logits, and the result says so', async () => {
  const model = decodeModel(readFileSync(DEMO_MODEL));
  const graph = model.graph!;
  const logits = graph.output![0].name!;
  graph.node!.push({ opType: 'Softmax', name: 'final_softmax', input: [logits], output: ['probabilities'], attribute: [{ name: 'axis', type: 2, i: 1 }] });
  graph.output = [tensorValueInfo('probabilities', ['N', 10])];
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'rlab-softmax-')), 'with-softmax.onnx');
  writeFileSync(file, encodeModel(model));

  const common = {
    data: DEMO_TEST_IMAGES,
    labels: DEMO_TEST_LABELS,
    limit: 100,
    batchSize: 50,
    threads: 1,
    ep: 'cpu' as const,
    seed: 0,
    attacks: { names: ['fgsm', 'pgd'], eps: [0.03], norm: 'linf' as const, steps: 5 },
  };
  const withSoftmax = await runEvaluation({ ...common, model: file });
  const plain = await runEvaluation({ ...common, model: DEMO_MODEL });
  assert.equal(withSoftmax.model.output, logits);
  assert.match(withSoftmax.model.logits!, /final Softmax 'final_softmax'/);
  assert.match(plain.model.logits!, /the model's output/);
  assert.equal(withSoftmax.clean.accuracy, plain.clean.accuracy);
  for (const [i, a] of withSoftmax.attacks!.entries()) {
    assert.equal(a.accuracy, plain.attacks![i].accuracy, a.attack);
    assert.equal(a.robust, plain.attacks![i].robust, `${a.attack}: the same samples survive`);
  }
});
