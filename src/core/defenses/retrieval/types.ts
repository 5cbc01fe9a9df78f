/** The retrieval defense's public types, defaults and the tensor names of its graph. */
import type { SessionOptions } from '../../runtime/session';
import type { Distance } from '../knn';
import type { LshIndex, LshOptions } from '../lsh';

export interface PaperHeadTraining {
  /** Hidden layer widths (ReLU). Default [64]. */
  hidden?: number[];
  /** Default 20. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Adam learning rate (β1 0.9, β2 0.999, ε 1e-7 as TensorFlow.js). Default 2e-3. */
  learningRate?: number;
  /** How the leave-one-out retrieval of the training features searches. Default: the defense's search. */
  search?: 'exact' | 'lsh';
}

/** Training of the learned attention matrix U (with the paper head's layers, or alone for the tail head). */
export interface AttentionTraining {
  /** Default 20. */
  epochs?: number;
  /** Default 128. */
  batchSize?: number;
  /** Adam learning rate (β1 0.9, β2 0.999, ε 1e-7). Default 2e-3. */
  learningRate?: number;
}

export interface RetrievalOptions {
  head: 'tail' | 'paper';
  /** N, retrieved neighbours. Default 10. */
  neighbours?: number;
  /** Dimension p of h' = W h; 0: search on h. Default 64 (capped at D). */
  projectionDims?: number;
  /** Search distance in the projected space. Default 'l2'. */
  distance?: Distance;
  /** Attention score scale s. Default 'inv-sqrt-d'. */
  attentionScale?: 'inv-sqrt-d' | number;
  /** The search of the defended model (and of the paper head's training): exact, or Hamming-ball LSH. Default 'exact'. */
  search?: 'exact' | 'lsh';
  /**
   * β_n = s·hᵀ U h_n: U = I ('identity'), or U (D × D, activation space, initialised at I) trained
   * on the reference set with leave-one-out retrieval ('learned'). Default 'identity'.
   */
  attention?: 'identity' | 'learned';
  /** Training of U when attention is 'learned' (the paper head's training options are used with the paper head). */
  attentionTraining?: AttentionTraining;
  /** Seed of W, the LSH hyperplanes, the head's initialisation and shuffling. Default 0. */
  seed?: number;
  /** LSH parameters (tables L, bits K, Hamming radius r of the multi-probe), for the graph's and the JS search. */
  lsh?: LshOptions;
  training?: PaperHeadTraining;
  /** Called after every training epoch of the paper head with the epoch's mean training loss. */
  onEpoch?: (epoch: number, loss: number) => void;
  /** Where onnxruntime trains the paper head. Default: the CPU, one thread per core. */
  session?: SessionOptions;
  /** Checked before every training batch of the paper head: the fit rejects with CancelledError. */
  signal?: AbortSignal;
}

export const RETRIEVAL_DEFAULTS = { neighbours: 10, projectionDims: 64, distance: 'l2', attentionScale: 'inv-sqrt-d', seed: 0 } as const;
export const PAPER_HEAD_DEFAULTS = { hidden: [64], epochs: 20, batchSize: 128, learningRate: 2e-3, search: 'exact' } as const;
export const ATTENTION_TRAINING_DEFAULTS = { epochs: 20, batchSize: 128, learningRate: 2e-3 } as const;
/** The largest D for which a learned U (D × D values) is allowed. */
export const MAX_LEARNED_ATTENTION_DIMS = 1024;

/** Names of internal tensors and initializers of the retrieval graph (stable). */
export const RETRIEVAL_TENSORS = {
  /** float [N, p]: h' (or h). */
  key: 'retrieval_key',
  /** int64 [N, neighbours]. */
  indices: 'retrieval_indices',
  /** float [N, neighbours]: the attention weights α. */
  alpha: 'retrieval_alpha',
  /** float [N, D]: h̄ (flat). */
  hbar: 'retrieval_hbar',
  /** float [N, C]: ȳ. */
  ybar: 'retrieval_ybar',
  database: 'retrieval_database',
  labels: 'retrieval_labels_onehot',
  projection: 'retrieval_projection_t',
  /** bool [N, n]: the LSH candidates (only with LSH search). */
  candidates: 'retrieval_lsh_candidates',
  /** float [D, D]: the attention matrix U (only with learned attention). */
  attentionMatrix: 'retrieval_attention_u',
} as const;

/** The JS side of the retrieval defense: database, projection and LSH index. */
export interface RetrievalIndex {
  n: number;
  /** D, values per activation. */
  size: number;
  dims: number[];
  numClasses: number;
  neighbours: number;
  distance: Distance;
  /** The attention scale s. */
  scale: number;
  database: Float32Array;
  labels: Int32Array;
  /** p (0: no projection). */
  projectionDims: number;
  /** W, [p, D] (undefined when p = 0). */
  projection?: Float32Array;
  /** The search space rows: database · Wᵀ ([n, p]), or the database itself. */
  keys: Float32Array;
  keyDims: number;
  lsh: LshIndex;
  /** U [D, D] row-major (β = s·Σ_jk h_j U_jk h_n,k); undefined: the identity. */
  attention?: Float32Array;
}

export interface SearchOptions {
  /** 'exact' (brute force) or 'lsh' (candidates from the LSH index, re-ranked exactly). Default 'lsh'. */
  method?: 'exact' | 'lsh';
  /** A database row to leave out for query q (leave-one-out), or −1. */
  exclude?: (q: number) => number;
  /** Overrides the index's Hamming radius of the multi-probe. */
  radius?: number;
}

export interface Attention {
  /** [count, N] attention weights (each row sums to 1). */
  alpha: Float64Array;
  /** [count, D] h̄. */
  hbar: Float32Array;
  /** [count, C] ȳ. */
  ybar: Float32Array;
}
