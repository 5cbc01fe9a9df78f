/** What every stage of an evaluation gets from its caller: progress, log and cancellation. */
import type { WorkTracker } from './progress';
import type { Progress } from '../../protocol/experiment';

export { CancelledError, isCancelled, throwIfCancelled } from '../cancel';

export interface RunHooks {
  onProgress?(p: Progress): void;
  onLog?(line: string): void;
  signal?: AbortSignal;
  /** Counts the attacks' work for overall progress and the estimate of the time left. */
  work?: WorkTracker;
}
