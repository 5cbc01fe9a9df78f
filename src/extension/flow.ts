/**
 * A multi-step quick input with a Back button: the steps of a wizard run one after another in the
 * same widget ("Title (3/9)"), Back returns to the previous step with its answer still selected,
 * and steps that do not apply to the answers so far are skipped (and not counted). The answers
 * live in one plain state object, so a cancelled wizard can be saved and offered again.
 */
import * as vscode from 'vscode';

/** What a step tells the runner: go on, go back one step, or stop (the user cancelled). */
export type StepOutcome = 'next' | 'back' | 'cancel';

export interface FlowStep<S> {
  /** Skipped (and not counted) when it does not apply to the answers so far. */
  skip?(state: S): boolean;
  run(ui: FlowUi, state: S): Promise<StepOutcome>;
}

export interface PickOptions<T extends vscode.QuickPickItem> {
  placeholder: string;
  items: readonly T[];
  /** The item to highlight (a previous answer, or the suggestion). */
  active?: T;
  matchOnDescription?: boolean;
  /** A problem with the answers so far, shown above the items (e.g. a labels file that does not match). */
  problem?: string;
}

export interface InputOptions {
  prompt: string;
  value?: string;
  placeholder?: string;
  /** A problem in words, or undefined when the text is acceptable (shown as you type). */
  validate(text: string): string | undefined;
}

/** The widgets a step shows; each resolves to the answer, 'back' or undefined (cancelled). */
export class FlowUi {
  step = 1;
  totalSteps = 1;
  canGoBack = false;

  constructor(readonly title: string) {}

  pick<T extends vscode.QuickPickItem>(o: PickOptions<T>): Promise<T | 'back' | undefined> {
    return this.show<T>(o, false).then((r) => (Array.isArray(r) ? r[0] : r));
  }

  pickMany<T extends vscode.QuickPickItem>(o: PickOptions<T> & { picked: readonly T[] }): Promise<T[] | 'back' | undefined> {
    return this.show<T>(o, true).then((r) => (r === undefined || r === 'back' || Array.isArray(r) ? r : [r]));
  }

  /*
   * One quick pick and one input box serve every step: a fresh widget per step would inherit the
   * previous step's typed text for a moment, filter its items with it and focus the wrong row.
   */
  private quickPick?: vscode.QuickPick<vscode.QuickPickItem>;
  private inputBox?: vscode.InputBox;

  private show<T extends vscode.QuickPickItem>(o: PickOptions<T> & { picked?: readonly T[] }, many: boolean): Promise<T | T[] | 'back' | undefined> {
    const qp = (this.quickPick ??= vscode.window.createQuickPick()) as unknown as vscode.QuickPick<T>;
    this.decorate(qp);
    qp.value = '';
    qp.placeholder = o.placeholder;
    qp.canSelectMany = many;
    qp.matchOnDescription = o.matchOnDescription ?? false;
    const problem = o.problem ? [{ label: `$(error) ${o.problem}`, kind: vscode.QuickPickItemKind.Separator } as unknown as T] : [];
    qp.items = [...problem, ...o.items];
    if (many) qp.selectedItems = o.picked ?? [];
    else if (o.active) qp.activeItems = [o.active];
    return new Promise((resolve) => {
      const listeners: vscode.Disposable[] = [];
      const done = (value: T | T[] | 'back' | undefined) => {
        if (!listeners.length) return;
        listeners.splice(0).forEach((l) => l.dispose());
        resolve(value);
      };
      listeners.push(
        qp.onDidTriggerButton((b) => b === vscode.QuickInputButtons.Back && done('back')),
        qp.onDidAccept(() => {
          if (many) return done([...qp.selectedItems]);
          const [chosen] = qp.activeItems;
          if (chosen) done(chosen);
        }),
        qp.onDidHide(() => done(undefined)),
      );
      qp.show();
    });
  }

  input(o: InputOptions): Promise<string | 'back' | undefined> {
    const box = (this.inputBox ??= vscode.window.createInputBox());
    this.decorate(box);
    box.prompt = o.prompt;
    box.value = o.value ?? '';
    box.placeholder = o.placeholder;
    box.validationMessage = o.value ? o.validate(o.value) : undefined;
    return new Promise((resolve) => {
      const listeners: vscode.Disposable[] = [];
      const done = (value: string | 'back' | undefined) => {
        if (!listeners.length) return;
        listeners.splice(0).forEach((l) => l.dispose());
        resolve(value);
      };
      listeners.push(
        box.onDidChangeValue((text) => (box.validationMessage = o.validate(text))),
        box.onDidTriggerButton((b) => b === vscode.QuickInputButtons.Back && done('back')),
        box.onDidAccept(() => {
          const problem = o.validate(box.value);
          box.validationMessage = problem;
          if (!problem) done(box.value);
        }),
        box.onDidHide(() => done(undefined)),
      );
      box.show();
    });
  }

  /** Shows the current widget busy (and ignoring input) while `work` runs, e.g. checking a dataset. */
  async busy<T>(work: Promise<T>): Promise<T> {
    const widgets = [this.quickPick, this.inputBox].filter((w): w is NonNullable<typeof w> => !!w);
    widgets.forEach((w) => ((w.busy = true), (w.enabled = false)));
    try {
      return await work;
    } finally {
      widgets.forEach((w) => ((w.busy = false), (w.enabled = true)));
    }
  }

  /** Closes the widgets (the flow is over). */
  dispose(): void {
    this.quickPick?.dispose();
    this.inputBox?.dispose();
  }

  private decorate(input: vscode.QuickInput & { buttons: readonly vscode.QuickInputButton[] }): void {
    input.title = this.title;
    input.step = this.step;
    input.totalSteps = this.totalSteps;
    input.ignoreFocusOut = true;
    input.buttons = this.canGoBack ? [vscode.QuickInputButtons.Back] : [];
  }
}

/**
 * Runs the steps in order over `state`; resolves true when the last step completed, false when the
 * user cancelled (the state then holds every answer given so far).
 */
export async function runFlow<S>(title: string, steps: readonly FlowStep<S>[], state: S): Promise<boolean> {
  const ui = new FlowUi(title);
  try {
    return await runSteps(ui, steps, state);
  } finally {
    ui.dispose();
  }
}

async function runSteps<S>(ui: FlowUi, steps: readonly FlowStep<S>[], state: S): Promise<boolean> {
  const history: number[] = [];
  let i = 0;
  while (i < steps.length) {
    if (steps[i].skip?.(state)) {
      i++;
      continue;
    }
    const applicable = steps.filter((s) => !s.skip?.(state));
    ui.step = applicable.indexOf(steps[i]) + 1;
    ui.totalSteps = applicable.length;
    ui.canGoBack = history.length > 0;
    const outcome = await steps[i].run(ui, state);
    if (outcome === 'cancel') return false;
    if (outcome === 'back') i = history.pop() ?? 0;
    else {
      history.push(i);
      i++;
    }
  }
  return true;
}
