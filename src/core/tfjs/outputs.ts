/**
 * The converted model's outputs. TensorFlow.js classifiers end in a softmax; attacks and
 * gradients want the logits, so the converters drop a final softmax and output its input. Where
 * no pre-softmax tensor exists (an average of softmax outputs, say), the output is the Log of the
 * probabilities: the same argmax, and softmax of it gives the probabilities back. What was done is
 * recorded in the model's metadata_props under "rlab.output".
 */
import type { ModelProto } from '../onnx/proto';
import type { OnnxWriter, Val } from './emit';

export interface OutputPlan {
  val: Val;
  /** logits: val is pre-softmax; log: val holds probabilities, output their Log; as-is: neither. */
  kind: 'logits' | 'log' | 'as-is';
  note: string;
}

export const OUTPUT_KEY = 'rlab.output';
export const SOURCE_KEY = 'rlab.source';

export function finishOutputs(
  e: OnnxWriter,
  plans: OutputPlan[],
  meta: { producer: string; producerVersion?: string; docString: string; source: string },
): { model: ModelProto; note: string } {
  const outs = plans.map((p) => {
    if (p.kind !== 'log') return { val: p.val };
    const name = `${p.val.hint}/Log`;
    return { val: e.elementwise('Log', [p.val], name) };
  });
  const note = plans.map((p) => p.note).join('; ');
  const model = e.finish(outs, {
    producer: meta.producer,
    producerVersion: meta.producerVersion,
    docString: meta.docString,
    props: { [OUTPUT_KEY]: note, [SOURCE_KEY]: meta.source, 'rlab.layout': 'input NHWC, as in TensorFlow.js' },
  });
  return { model, note };
}
