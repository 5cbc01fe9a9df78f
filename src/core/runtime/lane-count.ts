/**
 * How many lanes (classifier copies in worker threads, see lanes.ts) an attack should use when the
 * user leaves it to the tool (`--lanes auto`, the default). Lanes pay off when whole batches can
 * run side by side: one per core, no more than there are batches, and only as many as fit in
 * memory, since each lane holds its own copy of the model and its own activations for a batch.
 * Measured on the demo CNN (2 cores, npm run bench:pgd): 2 lanes of 1 thread ran PGD at 4.3x
 * PyTorch, one session of 2 threads at 2.5x.
 */
import type { Dim } from './shapes';

export interface LaneChoice {
  lanes: number;
  threadsPerLane: number;
  /** Why: what limited the count, in words (recorded in the RunResult). */
  reason: string;
}

export interface LaneInputs {
  /** 'auto' or the number the user asked for. */
  requested: number | 'auto';
  cores: number;
  /** The user's thread setting (0: one per core). */
  threads: number;
  provider: 'cpu' | 'cuda';
  modelBytes: number;
  /** Shapes of every tensor of the model (batch dimension symbolic or fixed). */
  shapes: ReadonlyMap<string, readonly Dim[]>;
  batchSize: number;
  samples: number;
  /** Bytes the lanes may take together. */
  memoryBudget: number;
}

/** Most lanes `auto` picks, however many cores there are (each lane is a worker thread). */
export const MAX_AUTO_LANES = 8;
/** Forward activations are kept for the backward pass, which makes about as much again, plus the input gradient. */
const ACTIVATION_COPIES = 3;

/** Float32 bytes of one sample's activations over every tensor whose size is known (batch dimension excluded). */
export function activationBytesPerSample(shapes: ReadonlyMap<string, readonly Dim[]>): number {
  let total = 0;
  for (const dims of shapes.values()) {
    if (dims.length === 0) continue;
    const rest = dims.slice(1);
    if (!rest.every((d) => typeof d === 'number' && d >= 0)) continue;
    total += (rest as number[]).reduce((a, b) => a * b, 1);
  }
  return 4 * total;
}

/** The lane count and threads per lane for an attack run. */
export function chooseLanes(i: LaneInputs): LaneChoice {
  const threads = i.threads > 0 ? i.threads : i.cores;
  if (i.requested !== 'auto') {
    const lanes = Math.max(1, Math.floor(i.requested));
    return { lanes, threadsPerLane: Math.max(1, Math.floor(threads / lanes)), reason: `--lanes ${lanes} as asked` };
  }
  if (i.provider !== 'cpu') return { lanes: 1, threadsPerLane: threads, reason: `auto: one session, the model runs on ${i.provider}` };
  const perLane = 2 * i.modelBytes + ACTIVATION_COPIES * i.batchSize * activationBytesPerSample(i.shapes);
  const limits: [number, string][] = [
    [Math.min(threads, MAX_AUTO_LANES), `${threads} thread${threads === 1 ? '' : 's'}`],
    [Math.ceil(i.samples / Math.max(1, i.batchSize)), `${Math.ceil(i.samples / Math.max(1, i.batchSize))} batch${i.samples > i.batchSize ? 'es' : ''}`],
    [Math.floor(i.memoryBudget / Math.max(1, perLane)), `memory (${mib(perLane)} MiB per lane of ${mib(i.memoryBudget)} MiB)`],
  ];
  const [lanes, limitedBy] = limits.reduce((best, l) => (l[0] < best[0] ? l : best));
  const count = Math.max(1, lanes);
  return {
    lanes: count,
    threadsPerLane: Math.max(1, Math.floor(threads / count)),
    reason: `auto: ${count} lane${count === 1 ? '' : 's'}, limited by ${limitedBy}`,
  };
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
