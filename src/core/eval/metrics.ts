/** Accuracy and the confusion matrix of a set of predictions. */
import type { RunResult } from '../../protocol/run-result';

export function accuracyAndConfusion(predictions: Int32Array, labels: Int32Array, classes: number): RunResult['clean'] {
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    confusion[labels[i]][predictions[i]]++;
    if (predictions[i] === labels[i]) correct++;
  }
  return { accuracy: labels.length ? correct / labels.length : 0, correct, count: labels.length, confusion };
}

/** 1 where the prediction equals the label. */
export function correctFlags(predictions: Int32Array, labels: Int32Array): Uint8Array {
  return Uint8Array.from(labels, (y, i) => (predictions[i] === y ? 1 : 0));
}
