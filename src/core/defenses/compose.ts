/**
 * Splices a fitted defense into the classifier: one ONNX model, head → defense → tail (or the
 * defense after the tail, reading T and the logits). The result runs on any execution provider,
 * is what `export` writes, and is what the 'direct' threat model differentiates.
 */
import { UserError } from '../errors';
import { tensorValueInfo } from '../onnx/cut';
import { dataInputs } from '../onnx/graph-utils';
import { DataType, opsetVersion, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto';
import { int64Tensor } from '../onnx/tensor-proto';
import { DEFENSE_IO, type DefenseStage } from './types';

export interface DefendedModel {
  model: ModelProto;
  /** The classifier's class scores: logits, or the dAE's scaled probabilities (see stage.scores). */
  scores: string;
  /** Present when the defense can reject (bool [N], 1 = accepted). */
  accepted?: string;
  /** Present for LESCI's vote mode (bool [N], 1 = the vote passed). */
  projected?: string;
  /** Further diagnostic outputs of the defense (e.g. the dAE confidence). */
  extras: string[];
}

const PREFIX = 'defense/';
const OPTIONAL_OUTPUTS = [DEFENSE_IO.accepted, DEFENSE_IO.projected] as string[];

/** `exposeActivation`: also output the defended activation (before-tail defenses), for BPDA. */
export function composeDefended(model: ModelProto, stage: DefenseStage, options: { exposeActivation?: boolean } = {}): DefendedModel {
  const graph = model.graph!;
  const defenseGraph = stage.model.graph!;
  const T = stage.layer;
  const output = graph.output![0].name!;
  const known = new Set([...dataInputs(graph).map((v) => v.name), ...(graph.node ?? []).flatMap((n) => n.output ?? [])]);
  if (!known.has(T)) throw new UserError(`The defense sits on tensor '${T}', which the model does not have.`, 'Fit the defense again for this model.');

  const rename = (name: string): string => {
    if (!name) return name;
    if (name === DEFENSE_IO.activation) return T;
    if (name === DEFENSE_IO.logits) return output;
    if ((Object.values(DEFENSE_IO) as string[]).includes(name)) return name;
    return PREFIX + name;
  };
  const defenseInits = (defenseGraph.initializer ?? []).map((t) => ({ ...t, name: rename(t.name ?? '') }));
  const upgraded = opsetVersion(model) >= 18 && opsetVersion(stage.model) < 18;
  const defenseNodes: NodeProto[] = (defenseGraph.node ?? []).map((n) => {
    const renamed = { ...n, name: PREFIX + (n.name ?? n.opType), input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) };
    return upgraded ? reduceAxesAsInput(renamed, defenseInits) : renamed;
  });
  const defenseOutputs = (defenseGraph.output ?? []).map((v) => v.name ?? '');
  const extras = defenseOutputs.filter((o) => o !== DEFENSE_IO.scores && o !== DEFENSE_IO.activationOut && !OPTIONAL_OUTPUTS.includes(o)).map(rename);

  let nodes: NodeProto[];
  let scores: string;
  if (stage.placement === 'before-tail') {
    if (!defenseOutputs.includes(DEFENSE_IO.activationOut)) throw new Error(`defense ${stage.kind} (before-tail) lacks output ${DEFENSE_IO.activationOut}`);
    // Every consumer of T is downstream of it (T dominates the output): point them at the defense.
    const tail = (n: NodeProto): NodeProto => ({ ...n, input: (n.input ?? []).map((i) => (i === T ? DEFENSE_IO.activationOut : i)) });
    const producer = (graph.node ?? []).findIndex((n) => n.output?.includes(T));
    const original = graph.node ?? [];
    nodes = [...original.slice(0, producer + 1), ...defenseNodes, ...original.slice(producer + 1).map(tail)];
    scores = output;
  } else {
    if (!defenseOutputs.includes(DEFENSE_IO.scores)) throw new Error(`defense ${stage.kind} (after-tail) lacks output ${DEFENSE_IO.scores}`);
    nodes = [...(graph.node ?? []), ...defenseNodes];
    scores = DEFENSE_IO.scores;
  }

  const batch = graph.output![0].type?.tensorType?.shape?.dim?.[0];
  const batchDim = batch?.dimParam ?? batch?.dimValue ?? 'N';
  const scoreInfo = stage.placement === 'before-tail' ? graph.output![0] : { ...graph.output![0], name: DEFENSE_IO.scores };
  const flag = (name: string) => tensorValueInfo(name, [batchDim], DataType.BOOL);
  const outputs = [scoreInfo];
  const accepted = defenseOutputs.includes(DEFENSE_IO.accepted) ? DEFENSE_IO.accepted : undefined;
  const projected = defenseOutputs.includes(DEFENSE_IO.projected) ? DEFENSE_IO.projected : undefined;
  if (accepted) outputs.push(flag(accepted));
  if (projected) outputs.push(flag(projected));
  for (const e of extras) outputs.push({ name: e });
  if (options.exposeActivation && stage.placement === 'before-tail') outputs.push({ name: DEFENSE_IO.activationOut });

  return {
    model: {
      ...model,
      opsetImport: mergedOpsets(model, stage),
      graph: {
        ...graph,
        name: `${graph.name ?? 'model'}_${stage.kind}_defended`,
        node: nodes,
        initializer: [...(graph.initializer ?? []), ...defenseInits],
        output: outputs,
        valueInfo: graph.valueInfo,
      },
    },
    scores,
    accepted,
    projected,
    extras,
  };
}

/** Opset 18 moved the axes of ReduceMax/Mean/Min/Prod/L1/L2/LogSum… from an attribute to an input. */
function reduceAxesAsInput(node: NodeProto, initializers: TensorProto[]): NodeProto {
  if (!node.opType?.startsWith('Reduce') || node.opType === 'ReduceSum') return node;
  const axes = node.attribute?.find((a) => a.name === 'axes');
  if (!axes) return node;
  const name = `${node.name}/axes`;
  initializers.push(int64Tensor(name, [axes.ints!.length], axes.ints!));
  return { ...node, input: [...(node.input ?? []), name], attribute: node.attribute!.filter((a) => a !== axes) };
}

/**
 * One default-domain opset for the composed model. Defense graphs are built at opset 13 with ops
 * whose semantics hold from 13 on, so the model's own opset wins when it is 13 or newer.
 */
function mergedOpsets(model: ModelProto, stage: DefenseStage) {
  const modelOpset = opsetVersion(model);
  const defenseOpset = opsetVersion(stage.model);
  if (modelOpset < defenseOpset) {
    throw new UserError(
      `The model uses ONNX opset ${modelOpset}; the ${stage.kind} defense graph needs opset ${defenseOpset} or newer.`,
      'Re-export the model with a newer opset (e.g. torch.onnx.export(..., opset_version=13)).',
    );
  }
  const others = [...(model.opsetImport ?? []), ...(stage.model.opsetImport ?? [])].filter((o) => o.domain && o.domain !== 'ai.onnx');
  const unique = new Map(others.map((o) => [o.domain, o]));
  return [{ domain: '', version: modelOpset }, ...unique.values()];
}
