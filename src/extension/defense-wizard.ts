/**
 * Insert a defense at a layer: ask for the reference dataset and the defense's main parameters,
 * then write the DefensePlan into a new or an existing experiment file and open it.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import { THREAT_MODELS, type DefensePlan, type ExperimentFile, type ThreatModel } from '../protocol/experiment';
import { basename } from '../report/analysis';
import { EXPERIMENT_SUFFIX, relativePath, serializeExperiment, withDefense } from './experiment-file';
import { experimentName, type ExperimentNode } from './experiments-view';
import type { InsertionTarget } from './models-view';
import { inputNumber, pickAttacks, pickDataset, pickLabels, pickOne, type Step } from './pickers';

export const DEFENSES: Record<DefensePlan['kind'], { title: string; description: string }> = {
  lesci: { title: 'LESCI', description: 'nearest reference activation (vector quantization) or a k-nearest-neighbour vote' },
  dae: { title: 'dAE', description: 'denoising-autoencoder confidence: rejects what it cannot reconstruct' },
  retrieval: { title: 'Retrieval', description: 'attention over the nearest reference activations in a random projection' },
};

/** A DefensePlan with absolute paths (made relative when written into a file). */
interface AskedDefense {
  plan: Omit<DefensePlan, 'reference' | 'referenceLabels'>;
  reference: vscode.Uri;
  referenceLabels?: vscode.Uri;
}

/** Drops parameters left empty (null: the engine's default). */
function compact<T extends object>(o: { [K in keyof T]: T[K] | null }): T | undefined {
  const out = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)) as T;
  return Object.keys(out).length ? out : undefined;
}

async function askParameters(kind: DefensePlan['kind'], s: (n: number) => Step): Promise<Partial<DefensePlan> | undefined> {
  switch (kind) {
    case 'lesci': {
      const mode = await pickOne(s(3), 'How the LESCI layer uses its embedding space', [
        { value: 'vq', description: 'vector quantization: replace the activation by its nearest reference activation' },
        { value: 'vote', description: 'majority vote of the k nearest reference activations decides the label' },
      ]);
      if (!mode) return undefined;
      const k = mode === 'vote' ? await inputNumber(s(4), { prompt: 'k: reference activations that vote', integer: true, min: 1, max: 10000, optional: true }) : null;
      if (k === undefined) return undefined;
      const pcaDims = await inputNumber(s(5), { prompt: 'PCA dimensions r the distances are measured in', integer: true, min: 1, optional: true });
      if (pcaDims === undefined) return undefined;
      return { lesci: compact({ mode, k, pcaDims }) };
    }
    case 'dae': {
      const hidden = await inputNumber(s(3), { prompt: 'Hidden units of the denoising autoencoder', integer: true, min: 1, optional: true });
      if (hidden === undefined) return undefined;
      const sigma = await inputNumber(s(4), { prompt: 'Training noise σ (standard deviation of the corruption)', min: 0, optional: true });
      if (sigma === undefined) return undefined;
      const epochs = await inputNumber(s(5), { prompt: 'Training epochs', integer: true, min: 1, max: 10000, optional: true });
      if (epochs === undefined) return undefined;
      return { dae: compact({ hidden, sigma, epochs }) };
    }
    case 'retrieval': {
      const neighbours = await inputNumber(s(3), { prompt: 'Neighbours N retrieved per image', integer: true, min: 1, max: 10000, optional: true });
      if (neighbours === undefined) return undefined;
      const search = await pickOne(s(4), 'Nearest-neighbour search', [
        { value: 'exact', description: 'exact search over every reference activation' },
        { value: 'lsh', description: 'locality-sensitive hashing over a random projection (faster, approximate)' },
      ]);
      if (!search) return undefined;
      const projectionDims = await inputNumber(s(5), { prompt: 'Dimensions of the seeded random projection the search runs in', integer: true, min: 1, optional: true });
      if (projectionDims === undefined) return undefined;
      return { retrieval: compact({ neighbours, search, projectionDims }) };
    }
  }
}

const THREAT_DESCRIPTIONS: Record<ThreatModel, string> = {
  transfer: 'gradients of the undefended model',
  bpda: "the defense's backward pass replaced by the identity (Athalye et al. 2018)",
  direct: 'the true gradient of the defended model',
  'gradient-free': 'Square Attack / SPSA on the outputs alone (slowest)',
};

/** Threat models to attack the defended model under; `{}` when all (the default). */
async function pickThreats(step: Step): Promise<{ threats?: ThreatModel[] } | undefined> {
  const picked = await vscode.window.showQuickPick(
    THREAT_MODELS.map((t) => ({ label: t, description: THREAT_DESCRIPTIONS[t], picked: true, threat: t })),
    { title: `${step.title} (${step.step}/${step.totalSteps})`, placeHolder: 'Threat models to attack the defended model under', canPickMany: true, ignoreFocusOut: true },
  );
  if (!picked || picked.length === 0) return undefined;
  return picked.length === THREAT_MODELS.length ? {} : { threats: picked.map((p) => p.threat) };
}

export async function askDefense(kind: DefensePlan['kind'], target: InsertionTarget): Promise<AskedDefense | undefined> {
  const title = `Insert ${DEFENSES[kind].title} Defense after ${target.label}`;
  const s = (step: number): Step => ({ title, step, totalSteps: 6 });
  const reference = await pickDataset(s(1), 'Reference images the defense is fitted on (e.g. training images)', /train/i);
  if (!reference) return undefined;
  const labels = await pickLabels(s(2), reference);
  if (!labels) return undefined;
  const params = await askParameters(kind, s);
  if (!params) return undefined;
  const threats = await pickThreats(s(6));
  if (!threats) return undefined;
  return { plan: { kind, layer: target.tensor, ...params, ...threats }, reference, referenceLabels: labels.uri };
}

/** Where the defense goes: a new experiment file, or one that evaluates the same model. */
async function chooseExperiment(model: vscode.Uri, existing: ExperimentNode[], kind: DefensePlan['kind']): Promise<{ uri: vscode.Uri; experiment?: ExperimentFile } | undefined> {
  const sameModel = existing.filter((n) => n.experiment && path.resolve(path.dirname(n.uri.fsPath), n.experiment.model) === model.fsPath);
  if (sameModel.length) {
    const choice = await vscode.window.showQuickPick(
      [
        { label: '$(new-file) New experiment…', node: undefined as ExperimentNode | undefined },
        ...sameModel.map((n) => ({
          label: `$(edit) Update ${experimentName(n)}`,
          description: n.experiment?.defense ? `replaces its ${n.experiment.defense.kind} defense` : 'adds the defense',
          detail: vscode.workspace.asRelativePath(n.uri),
          node: n as ExperimentNode | undefined,
        })),
      ],
      { title: 'Write the defense into which experiment?', ignoreFocusOut: true },
    );
    if (!choice) return undefined;
    if (choice.node) return { uri: choice.node.uri, experiment: choice.node.experiment };
  }
  const dir = path.dirname(model.fsPath);
  const base = `${basename(model.fsPath).replace(/\.onnx$/i, '')}-${kind}`;
  const name = await vscode.window.showInputBox({
    title: 'New experiment file',
    prompt: `File name (in ${vscode.workspace.asRelativePath(dir)})`,
    value: `${base}${EXPERIMENT_SUFFIX}`,
    valueSelection: [0, base.length],
    ignoreFocusOut: true,
    validateInput: async (text) => {
      const t = text.trim();
      if (!t.endsWith(EXPERIMENT_SUFFIX) || t.length === EXPERIMENT_SUFFIX.length) return `The name must end with ${EXPERIMENT_SUFFIX}.`;
      if (/[\\/:*?"<>|]/.test(t)) return 'A file name cannot contain \\ / : * ? " < > |';
      const exists = await vscode.workspace.fs.stat(vscode.Uri.file(path.join(dir, t))).then(() => true, () => false);
      return exists ? `${t} exists; pick it from the list to update it, or choose another name.` : undefined;
    },
  });
  return name ? { uri: vscode.Uri.file(path.join(dir, name.trim())) } : undefined;
}

/** What a new experiment evaluates: test data, labels and attacks. */
async function askNewExperiment(uri: vscode.Uri, model: vscode.Uri): Promise<ExperimentFile | undefined> {
  const s = (step: number): Step => ({ title: `New experiment ${basename(uri.fsPath)}`, step, totalSteps: 5 });
  const data = await pickDataset(s(1), 'Test images to evaluate on', /test|t10k|val/i);
  if (!data) return undefined;
  const labels = await pickLabels(s(2), data);
  if (!labels) return undefined;
  const attacks = await pickAttacks(s(3));
  if (!attacks) return undefined;
  const file = uri.fsPath;
  return {
    name: basename(file).slice(0, -EXPERIMENT_SUFFIX.length),
    model: relativePath(file, model.fsPath),
    data: relativePath(file, data.fsPath),
    labels: labels.uri && relativePath(file, labels.uri.fsPath),
    attacks: attacks.plan,
  };
}

/** The whole flow; resolves with the experiment file written, or undefined when cancelled. */
export async function insertDefense(kind: DefensePlan['kind'], target: InsertionTarget, experiments: ExperimentNode[]): Promise<vscode.Uri | undefined> {
  const asked = await askDefense(kind, target);
  if (!asked) return undefined;
  const where = await chooseExperiment(target.model, experiments, kind);
  if (!where) return undefined;
  const base = where.experiment ?? (await askNewExperiment(where.uri, target.model));
  if (!base) return undefined;
  const file = where.uri.fsPath;
  const { kind: k, layer, ...params } = asked.plan;
  const defense = {
    kind: k,
    layer,
    reference: relativePath(file, asked.reference.fsPath),
    referenceLabels: asked.referenceLabels && relativePath(file, asked.referenceLabels.fsPath),
    ...params,
  } as DefensePlan;
  await writeExperiment(where.uri, withDefense(base, defense), !where.experiment);
  await vscode.window.showTextDocument(where.uri, { preview: false });
  return where.uri;
}

/** Writes through the editor's buffer when the file is open, so unsaved edits are not clobbered silently. */
export async function writeExperiment(uri: vscode.Uri, experiment: ExperimentFile, create: boolean): Promise<void> {
  const text = serializeExperiment(experiment);
  const edit = new vscode.WorkspaceEdit();
  if (create) edit.createFile(uri, { overwrite: false, contents: Buffer.from(text, 'utf8') });
  else {
    const doc = await vscode.workspace.openTextDocument(uri);
    edit.replace(uri, new vscode.Range(0, 0, doc.lineCount, 0), text);
  }
  if (!(await vscode.workspace.applyEdit(edit))) throw new Error(`Could not write ${vscode.workspace.asRelativePath(uri)}.`);
  if (!create) await (await vscode.workspace.openTextDocument(uri)).save();
}
