/**
 * Insert a defense at a layer: ask for the reference dataset and the defense's main parameters,
 * then write the DefensePlan into a new or an existing experiment file and open it.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import { CATALOGUE } from '../protocol/catalogue';
import { THREAT_MODELS, type DefensePlan, type ExperimentFile, type ThreatModel } from '../protocol/experiment';
import { paramValue, setParamValue, type CatalogueDefense, type ParamSpec } from '../protocol/params';
import { basename } from '../report/analysis';
import { EXPERIMENT_SUFFIX, relativePath, serializeExperiment, withDefense } from '../protocol/experiment-file';
import { experimentName, type ExperimentNode } from './experiments-view';
import type { InsertionTarget } from './models-view';
import { inputNumber, pickAttacks, pickDataset, pickLabels, pickOne, type Step } from './pickers';

/** The defenses the wizard offers, from the registry's catalogue. */
export const DEFENSES = CATALOGUE.defenses;

export function defenseInfo(kind: string): CatalogueDefense {
  const d = DEFENSES.find((x) => x.kind === kind);
  if (!d) throw new Error(`unknown defense '${kind}'`);
  return d;
}

/** The command that inserts a defense from a layer's context menu: robustnessLab.insertLesci, … */
export function insertCommand(kind: string): string {
  return `robustnessLab.insert${kind[0].toUpperCase()}${kind.slice(1)}`;
}

/** A DefensePlan with absolute paths (made relative when written into a file). */
interface AskedDefense {
  plan: Omit<DefensePlan, 'reference' | 'referenceLabels'>;
  reference: vscode.Uri;
  referenceLabels?: vscode.Uri;
}

/** The number of parameter steps the wizard asks for a defense. */
function askedParams(d: CatalogueDefense): ParamSpec[] {
  return d.params.filter((p) => p.ask);
}

/** The defense's main parameters (those marked `ask` in its spec); empty answers keep the defaults. */
async function askParameters(d: CatalogueDefense, s: (n: number) => Step, first: number): Promise<Record<string, unknown> | undefined> {
  const params: Record<string, unknown> = {};
  let step = first;
  for (const p of askedParams(d)) {
    const here = s(step++);
    if (p.when && (paramValue(params, p.when.key) ?? d.params.find((q) => q.key === p.when!.key)?.default) !== p.when.equals) continue;
    const defaultText = p.default !== undefined ? String(p.default) : p.defaultText;
    if (p.type === 'enum') {
      const value = await pickOne(
        here,
        p.description,
        p.values!.map((v, i) => ({ value: v, description: `${p.valueDescriptions?.[i] ?? ''}${v === p.default ? ' (default)' : ''}` })),
      );
      if (!value) return undefined;
      if (value !== p.default) setParamValue(params, p.key, value);
    } else if (p.type === 'integer' || p.type === 'number') {
      const value = await inputNumber(here, {
        prompt: `${p.description}${defaultText ? ` Leave empty for the default, ${defaultText}.` : ''}`,
        integer: p.type === 'integer',
        min: p.min,
        max: p.max,
        optional: true,
      });
      if (value === undefined) return undefined;
      if (value !== null) setParamValue(params, p.key, value);
    }
  }
  return params;
}

/** Threat models to attack the defended model under; `{}` when all (the default). */
async function pickThreats(step: Step): Promise<{ threats?: ThreatModel[] } | undefined> {
  const picked = await vscode.window.showQuickPick(
    CATALOGUE.threats.map((t) => ({ label: t.name, description: t.description, picked: true, threat: t.name as ThreatModel })),
    {
      title: `${step.title} (${step.step}/${step.totalSteps})`,
      placeHolder: 'Threat models to attack the defended model under',
      canPickMany: true,
      ignoreFocusOut: true,
    },
  );
  if (!picked || picked.length === 0) return undefined;
  return picked.length === THREAT_MODELS.length ? {} : { threats: picked.map((p) => p.threat) };
}

export async function askDefense(kind: string, target: InsertionTarget): Promise<AskedDefense | undefined> {
  const info = defenseInfo(kind);
  const title = `Insert ${info.title} Defense after ${target.label}`;
  const totalSteps = 3 + askedParams(info).length;
  const s = (step: number): Step => ({ title, step, totalSteps });
  const reference = await pickDataset(s(1), 'Reference images the defense is fitted on (e.g. training images)', /train/i);
  if (!reference) return undefined;
  const labels = await pickLabels(s(2), reference);
  if (!labels) return undefined;
  const params = await askParameters(info, s, 3);
  if (!params) return undefined;
  const threats = await pickThreats(s(totalSteps));
  if (!threats) return undefined;
  return {
    plan: { kind, layer: target.tensor, ...(Object.keys(params).length ? { [kind]: params } : {}), ...threats },
    reference,
    referenceLabels: labels.uri,
  };
}

/** Where the defense goes: a new experiment file, or one that evaluates the same model. */
async function chooseExperiment(
  model: vscode.Uri,
  existing: ExperimentNode[],
  kind: string,
): Promise<{ uri: vscode.Uri; experiment?: ExperimentFile } | undefined> {
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
  const base = `${basename(model.fsPath) === 'model.json' ? basename(path.dirname(model.fsPath)) : basename(model.fsPath).replace(/\.onnx$/i, '')}-${kind}`;
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
      const exists = await vscode.workspace.fs.stat(vscode.Uri.file(path.join(dir, t))).then(
        () => true,
        () => false,
      );
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
export async function insertDefense(kind: string, target: InsertionTarget, experiments: ExperimentNode[]): Promise<vscode.Uri | undefined> {
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
