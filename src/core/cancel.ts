/**
 * Cancellation, one mechanism for the whole engine: long loops check an AbortSignal between steps
 * and throw CancelledError; front ends recognise it with isCancelled (which also accepts the
 * 'AbortError' that Node's own APIs throw on an aborted signal).
 */
export class CancelledError extends Error {
  constructor(what = 'The evaluation') {
    super(`${what} was cancelled.`);
    this.name = 'CancelledError';
  }
}

/** Throws CancelledError when the signal has fired; `what` names the work ("The attack"). */
export function throwIfCancelled(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw new CancelledError(what);
}

export function isCancelled(e: unknown): boolean {
  return e instanceof CancelledError || (e instanceof Error && (e.name === 'CancelledError' || e.name === 'AbortError'));
}
