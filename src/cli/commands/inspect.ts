import { inspectModel } from '../../core/eval/model-session';
import type { ModelGraph } from '../../core/model/graph';
import { integer, parse } from '../args';
import { table } from '../table';

export const INSPECT_USAGE = 'robustness-lab inspect <model.onnx> [--json] [--threads T]';

function shapeText(shape: (number | string)[] | undefined): string {
  return shape ? `[${shape.join(', ')}]` : '?';
}

export function inspectJson(graph: ModelGraph) {
  return {
    inputs: graph.inputs,
    outputs: graph.outputs,
    layers: graph.layers.map((l) => ({
      name: l.name,
      op: l.op,
      outputs: l.outputs,
      shape: l.shape ?? null,
      params: l.params,
      insertionPoint: l.insertionPoint,
    })),
  };
}

function printInspect(graph: ModelGraph): void {
  console.log(`${graph.path}  (opset ${graph.opset}${graph.producer ? `, ${graph.producer}` : ''}, ${graph.totalParams.toLocaleString('en-US')} parameters)`);
  console.log('\nInputs:');
  for (const i of graph.inputs) console.log(`  ${i.name}  ${i.elemType} ${shapeText(i.shape)}`);
  console.log('Outputs:');
  for (const o of graph.outputs) console.log(`  ${o.name}  ${o.elemType} ${shapeText(o.shape)}`);
  console.log('\nLayers (✓ = insertion point: a defense can go right after this layer):\n');
  console.log(
    table(
      ['#', 'layer', 'op', 'output', 'shape', 'params', 'insert'],
      graph.layers.map((l) => [l.index, l.name, l.op, l.outputs.join(', '), shapeText(l.shape), l.params.toLocaleString('en-US'), l.insertionPoint ? '✓' : '']),
      [true, false, false, false, false, true, false],
    ),
  );
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' }, threads: { type: 'string' } }, 'inspect');
  if (values.help || positionals.length !== 1) {
    console.log(`Usage: ${INSPECT_USAGE}`);
    return values.help ? 0 : 2;
  }
  const { graph } = await inspectModel(positionals[0], integer(values, 'threads', 1, 0));
  if (values.json) console.log(JSON.stringify(inspectJson(graph), null, 2));
  else printInspect(graph);
  return 0;
}
