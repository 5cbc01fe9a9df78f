/** What every stage of an evaluation gets from its caller: progress, log and cancellation. */
import type { Progress } from '../../protocol/experiment';

export { CancelledError, isCancelled, throwIfCancelled } from '../cancel';

export interface RunHooks {
  onProgress?(p: Progress): void;
  onLog?(line: string): void;
  signal?: AbortSignal;
}
