/**
 * Overall progress of an evaluation, with an estimate of the time left. The attacks are nearly all
 * of a run's time, and their cost is known before they start: each attack run is weighed in
 * gradient evaluations per sample (steps × restarts × target classes; a forward-only query counts
 * a third of one) times its samples. Before the first attack has run, the clean pass's speed
 * calibrates the estimate (a gradient evaluation costs about three forward passes); once attacks
 * run, the estimate follows their measured pace. Per-sample early stopping makes the budget an
 * upper bound, so estimates err on the long side.
 */
import type { Progress } from '../../protocol/experiment';

/** A gradient evaluation costs about this many forward passes (forward + backward). */
const FORWARD_PER_GRADIENT = 3;

/** Gradient evaluations per sample of one attack run, from its effective parameters. */
export function attackWork(params: Record<string, unknown>): number {
  const num = (k: string, fallback: number) => (typeof params[k] === 'number' && Number.isFinite(params[k]) ? (params[k] as number) : fallback);
  const restarts = Math.max(1, num('restarts', 1));
  if (typeof params.queries === 'number') return (params.queries as number) / FORWARD_PER_GRADIENT;
  const steps = num('steps', 1);
  const targets = Math.max(1, num('targetClasses', 1));
  return steps * restarts * targets;
}

/** Counts units of work done against units planned; everything in gradient evaluations. */
export class WorkTracker {
  private planned = 0;
  private finished = 0;
  private running = 0;
  private fraction = 0;
  private startedAt?: number;
  private doneAtStart = 0;
  /** Seconds per unit from the clean pass, before any attack ran. */
  private calibration?: number;

  constructor(private readonly now: () => number = () => performance.now() / 1000) {}

  /** Adds work that will run (called when a stage knows its attacks). */
  plan(units: number): void {
    this.planned += units;
  }

  /** The clean pass's speed (images/s forward) gives the first estimate. */
  calibrate(forwardImagesPerSecond: number): void {
    if (forwardImagesPerSecond > 0) this.calibration = FORWARD_PER_GRADIENT / forwardImagesPerSecond;
  }

  /** An attack run of `units` starts (work not planned in advance is added to the plan). */
  begin(units: number): void {
    this.startedAt ??= this.now();
    this.running = units;
    this.fraction = 0;
    if (this.finished + units > this.planned) this.planned = this.finished + units;
  }

  advance(done: number, total: number): void {
    this.fraction = total > 0 ? Math.min(1, done / total) : 0;
  }

  end(): void {
    this.finished += this.running;
    this.running = 0;
    this.fraction = 0;
  }

  /** Units done and planned, and the seconds left when they can be estimated. */
  overall(): NonNullable<Progress['overall']> {
    const done = this.finished + this.running * this.fraction;
    const total = Math.max(this.planned, done);
    const left = total - done;
    let etaSeconds: number | undefined;
    const elapsed = this.startedAt === undefined ? 0 : this.now() - this.startedAt;
    // The measured pace once some work is in (a few seconds' worth), the calibration before.
    if (done - this.doneAtStart > 0 && elapsed >= 2) etaSeconds = (elapsed / (done - this.doneAtStart)) * left;
    else if (this.calibration !== undefined) etaSeconds = this.calibration * left;
    return { done, total, ...(etaSeconds !== undefined && { etaSeconds }) };
  }
}
