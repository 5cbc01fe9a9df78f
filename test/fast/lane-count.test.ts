// --lanes auto: the lane count from the cores, the batches and the memory budget, each limit worked
// out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { activationBytesPerSample, chooseLanes, MAX_AUTO_LANES, type LaneInputs } from '../../src/core/runtime/lane-count';

// A model with a [N, 1, 28, 28] input and a [N, 32, 14, 14] activation: (784 + 6272) floats per sample.
const shapes = new Map<string, (number | string)[]>([
  ['input', ['N', 1, 28, 28]],
  ['act', ['N', 32, 14, 14]],
  ['unknown', ['N', 'C']], // sizes that are not known do not count
]);
const base: LaneInputs = {
  requested: 'auto',
  cores: 4,
  threads: 0,
  provider: 'cpu',
  modelBytes: 1e6,
  shapes,
  batchSize: 100,
  samples: 1000,
  memoryBudget: 2 ** 33,
};

test('activation bytes per sample: float32 over the tensors of known size, batch excluded', () => {
  assert.equal(activationBytesPerSample(shapes), 4 * (784 + 6272));
});

test('auto: one lane per thread, at most one per batch, within memory; an explicit count wins', () => {
  assert.deepEqual(chooseLanes(base), { lanes: 4, threadsPerLane: 1, reason: 'auto: 4 lanes, limited by 4 threads' });
  assert.equal(chooseLanes({ ...base, threads: 2 }).lanes, 2, 'the thread setting, not the cores');
  assert.equal(chooseLanes({ ...base, cores: 64 }).lanes, MAX_AUTO_LANES);
  const few = chooseLanes({ ...base, samples: 150 });
  assert.equal(few.lanes, 2, '150 samples in batches of 100 are 2 batches');
  assert.equal(few.threadsPerLane, 2);
  assert.match(few.reason, /limited by 2 batches/);
  // Per lane: 2 × 1 MB + 3 × 100 × 28,224 B = 10,467,200 B; a 25 MB budget fits 2 lanes.
  const tight = chooseLanes({ ...base, memoryBudget: 25e6 });
  assert.equal(tight.lanes, 2);
  assert.match(tight.reason, /limited by memory/);
  assert.equal(chooseLanes({ ...base, memoryBudget: 1e6 }).lanes, 1, 'never fewer than one lane');
  assert.equal(chooseLanes({ ...base, provider: 'cuda' }).lanes, 1);
  assert.deepEqual(chooseLanes({ ...base, requested: 3 }), { lanes: 3, threadsPerLane: 1, reason: '--lanes 3 as asked' });
});
