/**
 * The walkthrough's steps tick when what they ask for has happened (a defense written, a run
 * finished, results shown), not when a command merely started: each sets a context key that the
 * step's completionEvents (`onContext:robustnessLab.walkthrough.<step>`) wait for.
 */
import * as vscode from 'vscode';

export type WalkthroughStep = 'demoOpened' | 'defenseInserted' | 'runFinished' | 'resultsShown';

export function completeStep(step: WalkthroughStep): void {
  void vscode.commands.executeCommand('setContext', `robustnessLab.walkthrough.${step}`, true);
}
