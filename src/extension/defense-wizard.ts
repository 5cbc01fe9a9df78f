/**
 * Insert a defense at a layer: one multi-step input (with Back) asks for the reference dataset, the
 * defense's main parameters and threat models, then where to write it: an existing experiment of
 * the same model, or a new one (test data, sample limit, attacks, epsilons). Datasets are checked
 * when they are picked (the labels' count against the images'); epsilons accept fractions (8/255)
 * and are checked against the input range. Cancelled answers are kept and offered again next time.
 * The experiment file is written with the file system API, so an undo in its editor cannot delete it.
 */
import path from 'node:path';
import * as vscode from 'vscode';
import { CATALOGUE } from '../protocol/catalogue';
import { parseEpsList } from '../protocol/eps';
import { THREAT_MODELS, type AttackPlan, type DefensePlan, type ExperimentFile, type ThreatModel } from '../protocol/experiment';
import type { DataDescription } from '../protocol/worker-messages';
import { paramValue, setParamValue, type CatalogueDefense, type ParamSpec } from '../protocol/params';
import { basename } from '../report/analysis';
import { EXPERIMENT_SUFFIX, relativePath, serializeExperiment, withDefense } from '../protocol/experiment-file';
import { experimentName, type ExperimentNode } from './experiments-view';
import type { InsertionTarget } from './models-view';
import { runFlow, type FlowStep, type StepOutcome } from './flow';
import { browse, datasetFiles, fileItem, holdsLabels, labelFiles, numberProblem, TEST_LIKE, TRAIN_LIKE, type FileItem } from './pickers';

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

/** The wizard's answers so far (plain data: saved when the wizard is cancelled, offered again next time). */
export interface DefenseAnswers {
  reference?: string;
  /** null: the dataset holds its labels. */
  referenceLabels?: string | null;
  params: Record<string, unknown>;
  threats?: ThreatModel[];
  /** The existing experiment file to update, or null for a new one. */
  existing?: string | null;
  fileName?: string;
  data?: string;
  labels?: string | null;
  dataInfo?: DataDescription;
  /** null: every sample. */
  limit?: number | null;
  /** Images of classes the model never learnt, for open-set recognition; null: none. */
  unknown?: string | null;
  /** A strength preset, 'choose' (attacks one by one) or 'none' (clean accuracy only). */
  attackMode?: string;
  attacks?: string[];
  norm?: AttackPlan['norm'];
  eps?: string;
}

/** What the wizard needs from the extension: dataset checks in the compute process, and where answers are kept. */
export interface WizardDeps {
  describeData(data: string, labels?: string): Promise<DataDescription>;
  state: vscode.Memento;
}

const stateKey = (kind: string, target: InsertionTarget) => `robustnessLab.wizard:${kind}:${target.model.fsPath}#${target.tensor}`;

/** The main parameters of a defense (those marked `ask` in its spec). */
function askedParams(d: CatalogueDefense): ParamSpec[] {
  return d.params.filter((p) => p.ask);
}

const backOrCancel = (r: unknown): StepOutcome | undefined => (r === 'back' ? 'back' : r === undefined ? 'cancel' : undefined);

/** A dataset step: workspace files (preferred names first) and Browse…; datasets that hold labels are checked at once. */
function datasetStep(
  deps: WizardDeps,
  placeholder: string,
  prefer: RegExp,
  get: (a: DefenseAnswers) => string | undefined,
  set: (a: DefenseAnswers, data: string, selfLabelled: DataDescription | undefined) => void,
  skip?: (a: DefenseAnswers) => boolean,
): FlowStep<DefenseAnswers> {
  let problem: string | undefined;
  return {
    skip,
    async run(ui, a) {
      for (;;) {
        const files = await datasetFiles(prefer);
        const items: FileItem[] = [
          ...files.map(fileItem),
          { label: '$(folder-opened) Browse…', description: 'a file, or a folder of images with one sub-folder per class', action: 'browse', alwaysShow: true },
        ];
        const previous = get(a);
        const choice = await ui.pick({
          placeholder,
          items,
          active: items.find((i) => previous && i.uri?.fsPath === previous) ?? items[0],
          matchOnDescription: true,
          problem,
        });
        const stop = backOrCancel(choice);
        if (stop) return stop;
        const picked = (choice as FileItem).action === 'browse' ? await browse(placeholder, true) : (choice as FileItem).uri;
        if (!picked) continue;
        problem = undefined;
        if (await holdsLabels(picked)) {
          // NPZ files and image folders carry their labels: check them now, not after the last step.
          try {
            set(a, picked.fsPath, await ui.busy(deps.describeData(picked.fsPath)));
          } catch (e) {
            problem = `${basename(picked.fsPath)}: ${(e as Error).message.split('\n')[0]}`;
            continue;
          }
        } else set(a, picked.fsPath, undefined);
        return 'next';
      }
    },
  };
}

/** A labels step for a dataset that does not carry its labels; the count is checked against the images' when picked. */
function labelsStep(
  deps: WizardDeps,
  data: (a: DefenseAnswers) => string | undefined,
  get: (a: DefenseAnswers) => string | null | undefined,
  set: (a: DefenseAnswers, labels: string, info: DataDescription) => void,
  skip: (a: DefenseAnswers) => boolean,
): FlowStep<DefenseAnswers> {
  let problem: string | undefined;
  return {
    skip,
    async run(ui, a) {
      const dataUri = vscode.Uri.file(data(a)!);
      for (;;) {
        const files = await labelFiles(dataUri);
        const items: FileItem[] = [...files.map(fileItem), { label: '$(folder-opened) Browse…', action: 'browse', alwaysShow: true }];
        const previous = get(a);
        const choice = await ui.pick({
          placeholder: `Labels for ${basename(dataUri.fsPath)} (the file next to it comes first)`,
          items,
          active: items.find((i) => previous && i.uri?.fsPath === previous) ?? items[0],
          matchOnDescription: true,
          problem,
        });
        const stop = backOrCancel(choice);
        if (stop) return stop;
        const picked = (choice as FileItem).action === 'browse' ? await browse(`Labels for ${basename(dataUri.fsPath)}`, false) : (choice as FileItem).uri;
        if (!picked) continue;
        try {
          set(a, picked.fsPath, await ui.busy(deps.describeData(dataUri.fsPath, picked.fsPath)));
          problem = undefined;
          return 'next';
        } catch (e) {
          problem = `${basename(picked.fsPath)}: ${(e as Error).message.split('\n')[0]}`;
        }
      }
    },
  };
}

/** One step per main parameter of the defense; empty answers keep the default, which the prompt names. */
function paramSteps(d: CatalogueDefense): FlowStep<DefenseAnswers>[] {
  return askedParams(d).map((p) => ({
    skip: (a) => !!p.when && (paramValue(a.params, p.when.key) ?? d.params.find((q) => q.key === p.when!.key)?.default) !== p.when.equals,
    async run(ui, a) {
      const current = paramValue(a.params, p.key);
      const defaultText = p.default !== undefined ? String(p.default) : p.defaultText;
      if (p.type === 'enum') {
        const items = p.values!.map((v, i) => ({
          label: v,
          description: `${p.valueDescriptions?.[i] ?? ''}${v === p.default ? ' (default)' : ''}`,
          value: v,
        }));
        const choice = await ui.pick({ placeholder: p.description, items, active: items.find((i) => i.value === (current ?? p.default)) });
        const stop = backOrCancel(choice);
        if (stop) return stop;
        const value = (choice as (typeof items)[number]).value;
        setParamValue(a.params, p.key, value === p.default ? undefined : value);
        return 'next';
      }
      const text = await ui.input({
        prompt: `${p.description}${defaultText ? ` Leave empty for the default, ${defaultText}.` : ''}`,
        value: current === undefined ? '' : String(current),
        placeholder: defaultText ? `default: ${defaultText}` : undefined,
        validate: (t) => numberProblem(t, { prompt: '', integer: p.type === 'integer', min: p.min, max: p.max, optional: true }),
      });
      const stop = backOrCancel(text);
      if (stop) return stop;
      setParamValue(a.params, p.key, (text as string).trim() === '' ? undefined : Number(text));
      return 'next';
    },
  }));
}

const threatsStep: FlowStep<DefenseAnswers> = {
  async run(ui, a) {
    const items = CATALOGUE.threats.map((t) => ({ label: t.name, description: t.description, threat: t.name as ThreatModel }));
    const chosen = a.threats ?? THREAT_MODELS;
    const picked = await ui.pickMany({
      placeholder: 'Threat models to attack the defended model under (default: all)',
      items,
      picked: items.filter((i) => chosen.includes(i.threat)),
    });
    const stop = backOrCancel(picked);
    if (stop) return stop;
    const list = picked as typeof items;
    if (list.length === 0) return 'cancel';
    a.threats = list.length === THREAT_MODELS.length ? undefined : list.map((p) => p.threat);
    return 'next';
  },
};

/** Where the defense goes: a new experiment, or an existing one of the same model. */
function targetStep(sameModel: ExperimentNode[]): FlowStep<DefenseAnswers> {
  return {
    skip: () => sameModel.length === 0,
    async run(ui, a) {
      const items = [
        { label: '$(new-file) New experiment…', file: null as string | null },
        ...sameModel.map((n) => ({
          label: `$(edit) Update ${experimentName(n)}`,
          description: n.experiment?.defense ? `replaces its ${n.experiment.defense.kind} defense` : 'adds the defense',
          detail: vscode.workspace.asRelativePath(n.uri),
          file: n.uri.fsPath as string | null,
        })),
      ];
      const choice = await ui.pick({
        placeholder: 'Write the defense into which experiment?',
        items,
        active: items.find((i) => i.file === (a.existing ?? null)),
      });
      const stop = backOrCancel(choice);
      if (stop) return stop;
      a.existing = (choice as (typeof items)[number]).file;
      return 'next';
    },
  };
}

function fileNameStep(model: vscode.Uri, kind: string): FlowStep<DefenseAnswers> {
  const dir = path.dirname(model.fsPath);
  const base = `${basename(model.fsPath) === 'model.json' ? basename(dir) : basename(model.fsPath).replace(/\.onnx$/i, '')}-${kind}`;
  return {
    skip: (a) => !!a.existing,
    async run(ui, a) {
      const existing = new Set((await vscode.workspace.fs.readDirectory(vscode.Uri.file(dir)).then(undefined, () => [])).map(([name]) => name));
      const text = await ui.input({
        prompt: `New experiment file (in ${vscode.workspace.asRelativePath(dir)})`,
        value: a.fileName ?? `${base}${EXPERIMENT_SUFFIX}`,
        validate: (t) => {
          const name = t.trim();
          if (!name.endsWith(EXPERIMENT_SUFFIX) || name.length === EXPERIMENT_SUFFIX.length) return `The name must end with ${EXPERIMENT_SUFFIX}.`;
          if (/[\\/:*?"<>|]/.test(name)) return 'A file name cannot contain \\ / : * ? " < > |';
          return existing.has(name) ? `${name} exists; go back to pick it from the list to update it, or choose another name.` : undefined;
        },
      });
      const stop = backOrCancel(text);
      if (stop) return stop;
      a.fileName = (text as string).trim();
      return 'next';
    },
  };
}

const newExperiment = (a: DefenseAnswers) => !a.existing;

const limitStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !newExperiment(a),
  async run(ui, a) {
    const count = a.dataInfo?.count;
    const text = await ui.input({
      prompt: `How many test samples to evaluate (the first N)? Leave empty for the Sample Limit setting (robustnessLab.sampleLimit), or all${count ? ` ${count.toLocaleString('en-US')}` : ''} when it is 0; a few hundred give a quick first look.`,
      value: a.limit ? String(a.limit) : '',
      placeholder: `default: the Sample Limit setting, else all${count ? ` ${count.toLocaleString('en-US')}` : ''} samples`,
      validate: (t) => numberProblem(t, { prompt: '', integer: true, min: 1, max: count, optional: true }),
    });
    const stop = backOrCancel(text);
    if (stop) return stop;
    a.limit = (text as string).trim() === '' ? null : Number(text);
    return 'next';
  },
};

/** Optional: images of classes the model never learnt (open-set recognition: rejection rates, AUROC, FPR at 95% TPR). */
const unknownStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !newExperiment(a),
  async run(ui, a) {
    const files = (await datasetFiles()).filter((u) => u.fsPath !== a.data && u.fsPath !== a.reference);
    const none: FileItem = { label: '$(circle-slash) None', description: 'no open-set recognition (default)', action: 'none', alwaysShow: true };
    const items: FileItem[] = [none, ...files.map(fileItem), { label: '$(folder-opened) Browse…', action: 'browse', alwaysShow: true }];
    for (;;) {
      const choice = await ui.pick({
        placeholder: 'Open set (optional): images of classes the model never learnt, to measure how well they are rejected',
        items,
        active: items.find((i) => a.unknown && i.uri?.fsPath === a.unknown) ?? none,
        matchOnDescription: true,
      });
      const stop = backOrCancel(choice);
      if (stop) return stop;
      const item = choice as FileItem;
      if (item.action === 'none') {
        a.unknown = null;
        return 'next';
      }
      const picked = item.action === 'browse' ? await browse('Unknown images', true) : item.uri;
      if (!picked) continue; // the file dialog was cancelled: this step again
      a.unknown = picked.fsPath;
      return 'next';
    }
  },
};

const attackModeStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !newExperiment(a),
  async run(ui, a) {
    const items = [
      ...CATALOGUE.strengths.map((st) => ({ label: st.name, detail: st.description, mode: st.name })),
      { label: 'Choose attacks…', detail: 'Pick the attacks one by one, with their default budgets', mode: 'choose' },
      { label: 'No attacks', detail: 'Clean accuracy only', mode: 'none' },
    ];
    const choice = await ui.pick({
      placeholder: 'How hard to attack (quick: a first look; standard: the AutoAttack ensemble plus the adaptive attacks)',
      items,
      active: items.find((i) => i.mode === (a.attackMode ?? 'quick')),
    });
    const stop = backOrCancel(choice);
    if (stop) return stop;
    a.attackMode = (choice as (typeof items)[number]).mode;
    return 'next';
  },
};

const chooseAttacksStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !newExperiment(a) || a.attackMode !== 'choose',
  async run(ui, a) {
    const items = CATALOGUE.attacks.map((at) => ({ label: at.name, description: at.title, detail: at.reference, name: at.name }));
    const chosen = a.attacks ?? ['fgsm'];
    const picked = await ui.pickMany({ placeholder: 'Attacks to run', items, picked: items.filter((i) => chosen.includes(i.name)) });
    const stop = backOrCancel(picked);
    if (stop) return stop;
    a.attacks = (picked as typeof items).map((p) => p.name);
    if (a.attacks.length === 0) a.attackMode = 'none';
    return 'next';
  },
};

const attacking = (a: DefenseAnswers) => newExperiment(a) && a.attackMode !== 'none';

const normStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !attacking(a),
  async run(ui, a) {
    const items = [
      { label: 'linf', description: 'L∞: every pixel changes by at most eps (default)', norm: 'linf' as const },
      { label: 'l2', description: 'L2: the perturbation has Euclidean norm at most eps', norm: 'l2' as const },
    ];
    const choice = await ui.pick({ placeholder: 'Threat model norm', items, active: items.find((i) => i.norm === (a.norm ?? 'linf')) });
    const stop = backOrCancel(choice);
    if (stop) return stop;
    const norm = (choice as (typeof items)[number]).norm;
    if (norm !== a.norm) a.eps = undefined; // the suggestion depends on the norm
    a.norm = norm;
    return 'next';
  },
};

const epsStep: FlowStep<DefenseAnswers> = {
  skip: (a) => !attacking(a),
  async run(ui, a) {
    const info = a.dataInfo;
    const range = { norm: a.norm ?? 'linf', sampleSize: info ? info.height * info.width * info.channels : undefined };
    const text = await ui.input({
      prompt: `Epsilons (${range.norm}, on inputs scaled to [0, 1]), comma-separated; fractions such as 8/255 are fine`,
      value: a.eps ?? (range.norm === 'linf' ? '2/255, 8/255' : '0.5, 1'),
      validate: (t) => {
        const parsed = parseEpsList(t, range);
        return 'problem' in parsed ? parsed.problem : undefined;
      },
    });
    const stop = backOrCancel(text);
    if (stop) return stop;
    a.eps = text as string;
    return 'next';
  },
};

/** The attack plan of the answers, or undefined for a clean evaluation. */
function attackPlan(a: DefenseAnswers): AttackPlan | undefined {
  if (a.attackMode === 'none' || !a.eps) return undefined;
  const parsed = parseEpsList(a.eps);
  const eps = 'values' in parsed ? parsed.values : [];
  const strength = a.attackMode !== 'choose' ? a.attackMode : undefined;
  return { names: strength ? [] : (a.attacks ?? []), ...(strength && { strength }), eps, norm: a.norm ?? 'linf' };
}

/** Every step of the wizard, in order (steps that do not apply skip themselves). */
function wizardSteps(deps: WizardDeps, info: CatalogueDefense, target: InsertionTarget, sameModel: ExperimentNode[]): FlowStep<DefenseAnswers>[] {
  return [
    datasetStep(
      deps,
      'Reference images the defense is fitted on (training images come first)',
      TRAIN_LIKE,
      (a) => a.reference,
      (a, data, info_) => {
        if (data !== a.reference) a.referenceLabels = undefined;
        a.reference = data;
        if (info_) a.referenceLabels = null;
      },
    ),
    labelsStep(
      deps,
      (a) => a.reference,
      (a) => a.referenceLabels,
      (a, labels) => (a.referenceLabels = labels),
      (a) => a.referenceLabels === null,
    ),
    ...paramSteps(info),
    threatsStep,
    targetStep(sameModel),
    fileNameStep(target.model, info.kind),
    ...evaluationSteps(deps),
  ];
}

/** What to evaluate on and how hard to attack: the steps of a new experiment (skipped when an existing one is updated). */
function evaluationSteps(deps: WizardDeps): FlowStep<DefenseAnswers>[] {
  return [
    datasetStep(
      deps,
      'Test images to evaluate on (test-like files come first)',
      TEST_LIKE,
      (a) => a.data,
      (a, data, info_) => {
        if (data !== a.data) a.labels = undefined;
        a.data = data;
        a.dataInfo = info_;
        if (info_) a.labels = null;
      },
      (a) => !newExperiment(a),
    ),
    labelsStep(
      deps,
      (a) => a.data,
      (a) => a.labels,
      (a, labels, dataInfo) => {
        a.labels = labels;
        a.dataInfo = dataInfo;
      },
      (a) => !newExperiment(a) || a.labels === null,
    ),
    limitStep,
    unknownStep,
    attackModeStep,
    chooseAttacksStep,
    normStep,
    epsStep,
  ];
}

/** An evaluation's inputs as absolute paths (Evaluate Robustness runs them at once, without a file). */
export interface AskedEvaluation {
  data: string;
  labels?: string;
  limit?: number;
  unknown?: { data: string };
  attacks?: AttackPlan;
}

/**
 * The evaluation steps on their own, for Evaluate Robustness on a model: the same multi-step input
 * with Back, dataset checks, sample limit, open set, attacks and epsilons as the defense wizard;
 * cancelled answers are kept for the next time the same model is evaluated.
 */
export async function askEvaluation(model: vscode.Uri, deps: WizardDeps): Promise<AskedEvaluation | undefined> {
  const key = `robustnessLab.evaluate:${model.fsPath}`;
  const saved = deps.state.get<DefenseAnswers>(key);
  const answers: DefenseAnswers = saved ? structuredClone(saved) : { params: {} };
  const title = `Evaluate ${basename(model.fsPath)}${saved ? ' (your answers from last time)' : ''}`;
  const completed = await runFlow(title, evaluationSteps(deps), answers);
  await deps.state.update(key, completed ? undefined : answers);
  if (!completed) return undefined;
  return {
    data: answers.data!,
    ...(answers.labels && { labels: answers.labels }),
    ...(answers.limit && { limit: answers.limit }),
    ...(answers.unknown && { unknown: { data: answers.unknown } }),
    attacks: attackPlan(answers),
  };
}

/** Only the defense's main parameters, as a flow of their own (e.g. for a layer sweep); undefined when cancelled. */
export async function askDefenseParams(kind: string, title: string): Promise<Record<string, unknown> | undefined> {
  const answers: DefenseAnswers = { params: {} };
  return (await runFlow(title, paramSteps(defenseInfo(kind)), answers)) ? answers.params : undefined;
}

/**
 * The whole flow; resolves with the experiment file written, or undefined when cancelled (the
 * answers are then kept for the next time the same defense is inserted at the same layer).
 */
export async function insertDefense(kind: string, target: InsertionTarget, experiments: ExperimentNode[], deps: WizardDeps): Promise<vscode.Uri | undefined> {
  const info = defenseInfo(kind);
  const key = stateKey(kind, target);
  const saved = deps.state.get<DefenseAnswers>(key);
  const answers: DefenseAnswers = saved ? structuredClone(saved) : { params: {} };
  const sameModel = experiments.filter((n) => n.experiment && path.resolve(path.dirname(n.uri.fsPath), n.experiment.model) === target.model.fsPath);
  const title = `Insert ${info.title} Defense after ${target.label}${saved ? ' (your answers from last time)' : ''}`;
  const completed = await runFlow(title, wizardSteps(deps, info, target, sameModel), answers);
  if (!completed) {
    await deps.state.update(key, answers);
    return undefined;
  }
  const uri = answers.existing ? vscode.Uri.file(answers.existing) : vscode.Uri.file(path.join(path.dirname(target.model.fsPath), answers.fileName!));
  const file = uri.fsPath;
  const defense = {
    kind,
    layer: target.tensor,
    reference: relativePath(file, answers.reference!),
    referenceLabels: answers.referenceLabels ? relativePath(file, answers.referenceLabels) : undefined,
    ...(Object.keys(answers.params).length ? { [kind]: answers.params } : {}),
    ...(answers.threats && { threats: answers.threats }),
  } as DefensePlan;
  const base: ExperimentFile = answers.existing
    ? sameModel.find((n) => n.uri.fsPath === answers.existing)!.experiment!
    : {
        name: basename(file).slice(0, -EXPERIMENT_SUFFIX.length),
        model: relativePath(file, target.model.fsPath),
        data: relativePath(file, answers.data!),
        labels: answers.labels ? relativePath(file, answers.labels) : undefined,
        ...(answers.limit && { limit: answers.limit }),
        ...(answers.unknown && { unknown: { data: relativePath(file, answers.unknown) } }),
        attacks: attackPlan(answers),
      };
  try {
    await writeExperiment(uri, withDefense(base, defense), !answers.existing);
  } catch (e) {
    await deps.state.update(key, answers); // nothing was written: the answers stay for another try
    throw e;
  }
  await deps.state.update(key, undefined);
  await vscode.window.showTextDocument(uri, { preview: false });
  return uri;
}

/**
 * Writes the experiment with the file system API (not as a workspace edit: an undo in the editor
 * must not delete a file the user just created). An existing file with unsaved edits is not
 * overwritten: the user saves or reverts first.
 */
export async function writeExperiment(uri: vscode.Uri, experiment: ExperimentFile, create: boolean): Promise<void> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === uri.fsPath);
  if (open?.isDirty)
    throw new Error(`${vscode.workspace.asRelativePath(uri)} has unsaved changes: save or revert them, then insert the defense again (your answers are kept).`);
  if (
    create &&
    (await vscode.workspace.fs.stat(uri).then(
      () => true,
      () => false,
    ))
  )
    throw new Error(`${vscode.workspace.asRelativePath(uri)} exists already; pick it in the wizard to update it.`);
  await vscode.workspace.fs.writeFile(uri, Buffer.from(serializeExperiment(experiment), 'utf8'));
}
