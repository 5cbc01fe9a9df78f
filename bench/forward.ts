/**
 * Clean forward pass of the demo model over the demo test set: onnxruntime (this project) beside
 * the same weights in PyTorch, same images, same batch and thread count, in one run.
 *   npm run bench -- [--threads 2] [--batch 100] [--repeats 5]
 */
import * as ort from 'onnxruntime-node';
import { loadModel } from '../src/core/model/load';
import { createSession, runBatched } from '../src/core/runtime/session';
import { DEMO, demoData, flag, median, torchReference } from './common';

async function main() {
  const threads = flag('threads', 2),
    batch = flag('batch', 100),
    repeats = flag('repeats', 5);
  const data = await demoData(1000);
  const session = await createSession(loadModel(DEMO.model).bytes, { ep: 'cpu', threads });
  const input = { name: 'input', data: data.x, count: data.count, sampleDims: [1, 28, 28] };
  await runBatched(session, input, 'logits', batch); // warm-up
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    await runBatched(session, input, 'logits', batch);
    rates.push(data.count / ((performance.now() - t0) / 1000));
  }
  await session.release();
  const ours = median(rates);
  const torch = torchReference(['--task', 'forward', '--batch', String(batch), '--threads', String(threads), '--limit', String(data.count)]);
  console.log(`forward pass, demo model, ${data.count} images, batch ${batch}, ${threads} threads (onnxruntime ${ort.env.versions.common})`);
  console.log(`  robustness-lab (onnxruntime): ${Math.round(ours).toLocaleString('en-US')} images/s (median of ${repeats})`);
  if ('skipped' in torch) console.log(`  PyTorch reference: skipped (${torch.skipped})`);
  else {
    console.log(`  PyTorch ${torch.torch}: ${Math.round(torch.imagesPerSecond).toLocaleString('en-US')} images/s`);
    console.log(`  ratio: ${(ours / torch.imagesPerSecond).toFixed(2)}x`);
  }
}

void main();
