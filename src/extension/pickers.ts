/**
 * The small dialogs the commands are made of: pick a model, a dataset, its labels, attacks; type
 * numbers in input boxes that validate as you type. Each returns undefined when the user cancels.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import { CATALOGUE } from '../protocol/catalogue';
import { parseEpsList, type EpsRange } from '../protocol/eps';
import type { AttackPlan } from '../protocol/experiment';
import { basename } from '../report/analysis';

const EXCLUDE = '**/{node_modules,.git,.rlab-cache,.vscode-test}/**';
/** File names the dataset readers understand (IDX raw or gzipped, NumPy). */
const DATA_GLOB = '**/*{-ubyte,-ubyte.gz,.idx,.idx.gz,.npy,.npz}';

export interface Step {
  title: string;
  step: number;
  totalSteps: number;
}

function stepTitle(s: Step): string {
  return `${s.title} (${s.step}/${s.totalSteps})`;
}

export type FileItem = vscode.QuickPickItem & { uri?: vscode.Uri; action?: 'browse' | 'none' };

export function fileItem(uri: vscode.Uri): FileItem {
  return { label: basename(uri.fsPath), description: vscode.workspace.asRelativePath(path.dirname(uri.fsPath)), uri };
}

export async function browse(title: string, folders: boolean, filters?: Record<string, string[]>): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({ title, canSelectFiles: true, canSelectFolders: folders, canSelectMany: false, filters });
  return picked?.[0];
}

export async function pickModel(models: vscode.Uri[], title: string): Promise<vscode.Uri | undefined> {
  if (models.length === 1) return models[0];
  const items: FileItem[] = [...models.map(fileItem), { label: '$(folder-opened) Browse…', action: 'browse', alwaysShow: true }];
  const choice = await vscode.window.showQuickPick(items, { title, placeHolder: 'Select an ONNX model' });
  if (choice?.action === 'browse') return browse(title, false, { 'Models (ONNX, TensorFlow.js model.json)': ['onnx', 'json'] });
  return choice?.uri;
}

/** Test-like file names, offered first for the data to evaluate on (t10k, test, x_test.npy …). */
export const TEST_LIKE = /t10k|test|val|(^|[_-])x([_.-]|$)/i;
/** Training-like names, offered first for a defense's reference set. */
export const TRAIN_LIKE = /train/i;

/** Dataset files of the workspace (labels files left out), those whose name matches `prefer` first. */
export async function datasetFiles(prefer?: RegExp): Promise<vscode.Uri[]> {
  const files = (await vscode.workspace.findFiles(DATA_GLOB, EXCLUDE, 500)).filter((u) => !isLabelsName(basename(u.fsPath)));
  const score = (u: vscode.Uri) => (prefer?.test(basename(u.fsPath)) ? 0 : 1);
  return files.sort((a, b) => score(a) - score(b) || vscode.workspace.asRelativePath(a).localeCompare(vscode.workspace.asRelativePath(b)));
}

/** Labels files by name: "labels" in it, or y / y_test / y-train as NumPy files. */
function isLabelsName(name: string): boolean {
  return /label/i.test(name) || /^y([_-][^.]*)?\.npy$/i.test(name);
}

/** The labels file name that goes with a data file: train-images-idx3 → train-labels-idx1, x_test.npy → y_test.npy. */
export function labelsCounterpart(name: string): string {
  return name
    .replace(/images/i, (m) => (m === 'IMAGES' ? 'LABELS' : m[0] === 'I' ? 'Labels' : 'labels'))
    .replace(/idx3/, 'idx1')
    .replace(/^x(?=[_.-])/i, 'y');
}

/** Labels files of the workspace for `data`: its counterpart first, then the others in its folder, then the rest. */
export async function labelFiles(data: vscode.Uri): Promise<vscode.Uri[]> {
  const counterpart = labelsCounterpart(basename(data.fsPath));
  const files = (await vscode.workspace.findFiles(DATA_GLOB, EXCLUDE, 500)).filter((u) => isLabelsName(basename(u.fsPath)));
  const sameFolder = (u: vscode.Uri) => path.dirname(u.fsPath) === path.dirname(data.fsPath);
  const score = (u: vscode.Uri) => (basename(u.fsPath) === counterpart && sameFolder(u) ? 0 : sameFolder(u) ? 1 : 2);
  return files.sort((a, b) => score(a) - score(b) || vscode.workspace.asRelativePath(a).localeCompare(vscode.workspace.asRelativePath(b)));
}

/** Whether the dataset carries its own labels: an NPZ file or an image folder. */
export async function holdsLabels(data: vscode.Uri): Promise<boolean> {
  if (/\.npz$/i.test(data.fsPath)) return true;
  return vscode.workspace.fs.stat(data).then(
    (s) => s.type === vscode.FileType.Directory,
    () => false,
  );
}

/** A dataset file (or image folder, through Browse…); `prefer` sorts matching names first. */
export async function pickDataset(step: Step, prompt: string, prefer?: RegExp): Promise<vscode.Uri | undefined> {
  const files = await datasetFiles(prefer);
  const items: FileItem[] = [
    ...files.map(fileItem),
    { label: '$(folder-opened) Browse…', description: 'a file, or a folder of images with one sub-folder per class', action: 'browse', alwaysShow: true },
  ];
  const choice = await vscode.window.showQuickPick(items, { title: stepTitle(step), placeHolder: prompt, ignoreFocusOut: true, matchOnDescription: true });
  if (choice?.action === 'browse') return browse(prompt, true);
  return choice?.uri;
}

/** The labels for a dataset: `{}` when the dataset holds them (NPZ, image folders), undefined on cancel. */
export async function pickLabels(step: Step, data: vscode.Uri): Promise<{ uri?: vscode.Uri } | undefined> {
  const name = basename(data.fsPath);
  const files = await labelFiles(data);
  const none: FileItem = {
    label: '$(circle-slash) No labels file',
    description: 'the dataset holds its labels (NPZ, image folder)',
    action: 'none',
    alwaysShow: true,
  };
  const browseItem: FileItem = { label: '$(folder-opened) Browse…', action: 'browse', alwaysShow: true };
  const items = (await holdsLabels(data)) ? [none, ...files.map(fileItem), browseItem] : [...files.map(fileItem), none, browseItem];
  const choice = await vscode.window.showQuickPick(items, {
    title: stepTitle(step),
    placeHolder: `Labels for ${name}`,
    ignoreFocusOut: true,
    matchOnDescription: true,
  });
  if (!choice) return undefined;
  if (choice.action === 'none') return {};
  if (choice.action === 'browse') {
    const uri = await browse(`Labels for ${name}`, false);
    return uri ? { uri } : undefined;
  }
  return { uri: choice.uri };
}

export interface NumberInput {
  prompt: string;
  /** Prefilled value; empty means the engine's default when `optional`. */
  value?: number;
  integer?: boolean;
  min?: number;
  max?: number;
  /** Empty input allowed: returns null (use the default). */
  optional?: boolean;
}

export function numberProblem(text: string, o: NumberInput): string | undefined {
  const t = text.trim();
  if (t === '') return o.optional ? undefined : 'Enter a number.';
  const n = Number(t);
  if (!Number.isFinite(n)) return `'${t}' is not a number.`;
  if (o.integer && !Number.isInteger(n)) return 'Enter a whole number.';
  if (o.min !== undefined && n < o.min) return `Must be at least ${o.min}.`;
  if (o.max !== undefined && n > o.max) return `Must be at most ${o.max}.`;
  return undefined;
}

/** A number from an input box that validates as you type; null = left empty (optional only). */
export async function inputNumber(step: Step, o: NumberInput): Promise<number | null | undefined> {
  const text = await vscode.window.showInputBox({
    title: stepTitle(step),
    prompt: o.prompt,
    value: o.value === undefined ? '' : String(o.value),
    placeHolder: o.optional ? 'leave empty for the default' : undefined,
    ignoreFocusOut: true,
    validateInput: (t) => numberProblem(t, o),
  });
  if (text === undefined) return undefined;
  return text.trim() === '' ? null : Number(text);
}

/** The problem with an epsilon list (decimals or fractions like 8/255, within the input range), if any. */
export function epsListProblem(text: string, range?: EpsRange): string | undefined {
  const parsed = parseEpsList(text, range);
  return 'problem' in parsed ? parsed.problem : undefined;
}

/** Attacks (a strength preset, or chosen one by one) and epsilons; `{}` for a clean evaluation only, undefined on cancel. */
export async function pickAttacks(first: Step): Promise<{ plan?: AttackPlan } | undefined> {
  const mode = await vscode.window.showQuickPick(
    [
      ...CATALOGUE.strengths.map((st) => ({ label: st.name, detail: st.description, strength: st.name as string | undefined, choose: false })),
      { label: 'Choose attacks…', detail: 'Pick the attacks one by one, with their default budgets', strength: undefined, choose: true },
      { label: 'No attacks', detail: 'Clean accuracy only', strength: undefined, choose: false },
    ],
    { title: stepTitle(first), placeHolder: 'How hard to attack (quick: a first look; standard: the AutoAttack ensemble)', ignoreFocusOut: true },
  );
  if (!mode) return undefined;
  if (!mode.strength && !mode.choose) return {};
  let names: string[] = [];
  if (mode.choose) {
    const picked = await vscode.window.showQuickPick(
      CATALOGUE.attacks.map((a) => ({ label: a.name, description: a.title, detail: a.reference, picked: a.name === 'fgsm', name: a.name })),
      { title: stepTitle(first), placeHolder: 'Attacks to run (none: clean accuracy only)', canPickMany: true, ignoreFocusOut: true },
    );
    if (!picked) return undefined;
    if (picked.length === 0) return {};
    names = picked.map((p) => p.name);
  }
  const norm = await vscode.window.showQuickPick(
    [
      { label: 'linf', description: 'L∞: every pixel changes by at most eps' },
      { label: 'l2', description: 'L2: the perturbation has Euclidean norm at most eps' },
    ],
    { title: stepTitle({ ...first, step: first.step + 1 }), placeHolder: 'Threat model norm', ignoreFocusOut: true },
  );
  if (!norm) return undefined;
  const eps = await vscode.window.showInputBox({
    title: stepTitle({ ...first, step: first.step + 2 }),
    prompt: `Epsilons (${norm.label}, on inputs scaled to [0, 1]), comma-separated`,
    value: norm.label === 'linf' ? '0.05, 0.1' : '0.5, 1, 2',
    ignoreFocusOut: true,
    validateInput: (t) => epsListProblem(t, { norm: norm.label as AttackPlan['norm'] }),
  });
  if (eps === undefined) return undefined;
  const epsValues = parseEpsList(eps);
  return {
    plan: {
      names,
      ...(mode.strength && { strength: mode.strength }),
      eps: 'values' in epsValues ? epsValues.values : [],
      norm: norm.label as AttackPlan['norm'],
    },
  };
}

/** One of a few options, each with an explanation. */
export async function pickOne<T extends string>(step: Step, placeHolder: string, options: { value: T; description: string }[]): Promise<T | undefined> {
  const choice = await vscode.window.showQuickPick(
    options.map((o) => ({ label: o.value, description: o.description, value: o.value })),
    { title: stepTitle(step), placeHolder, ignoreFocusOut: true },
  );
  return choice?.value;
}
