/**
 * Retrieval-augmented classification as a defense (Zhao, Li & Cho, SysML 2018).
 *
 * The private database is the reference set: activations h_i at T and one-hot labels y_i.
 *  - Retrieval (paper §2): the query h is randomly projected, h' = W h, W a seeded Gaussian matrix
 *    (`projectionDims` rows, entries N(0, 1/p); 0 = no projection, search on h itself). The N
 *    (`neighbours`; paper: 5 and 10) nearest database rows are searched for in that projected
 *    space, under `distance` ('l2' default, or 'cosine').
 *  - Attention: α_n = softmax_n(β_n) with β_n = s · hᵀ U h_n on the FULL vectors h, h_n (as in the
 *    paper). `attention`: 'identity' (U = I, default) or 'learned' (U, D × D, initialised at I and
 *    trained on the reference set with leave-one-out retrieval, jointly with the paper head's
 *    layers, or on the cross-entropy of ȳ for the tail head; head.ts). The paper has no scale s; raw dot
 *    products of un-normalised activations are in the hundreds to thousands, which makes the
 *    softmax a hard arg-max of the dot product (favouring large-norm rows, not the nearest ones).
 *    `attentionScale`: 'inv-sqrt-d' (default, s = 1/√D as in scaled dot-product attention) or a
 *    number (1 = the paper's unscaled scores).
 *  - h̄ = Σ α_n h_n, ȳ = Σ α_n y_n.
 *  - Heads: 'tail' (before-tail): h̄, reshaped to T's shape, goes through the rest of the network;
 *    nothing is trained. 'paper' (after-tail, scores = logits): fully connected layers on [h̄; ȳ]
 *    (standardised with the training set's mean and std), trained on onnxruntime (core/train) on
 *    the reference set, each sample retrieving from the database without itself (leave-one-out).
 *
 * `search`: the ONNX defense graph searches exactly (MatMul + TopK in the projected space) or with
 * LSH, the paper's engine (../lsh.ts: L tables of K sign bits of a seeded projection of h', and
 * Hamming-ball multi-probe of radius r, as ops; the exact distances of the candidates only, +∞ for
 * the others, then TopK), so that what is evaluated and exported is the paper's configuration. Both
 * export and differentiate: the indices (and the hash) are piecewise constant, so the gradient
 * flows through h in the attention scores and through the paper head, never through the search.
 * The JS search `retrievalSearch` does the same (exact, or the same LSH candidates re-ranked
 * exactly) for the paper head's leave-one-out training; the fit records the LSH recall@N against
 * exact search and the accuracy difference (params.lshCheck).
 *
 * Layout: types.ts, search.ts (index, projection, exact and LSH search), attention.ts (the JS
 * attention and leave-one-out features), graph.ts (the ONNX search and attention), head.ts (the
 * paper head's and the learned attention's training), fit.ts (fitRetrieval, the LSH check).
 */
export type { Attention, AttentionTraining, PaperHeadTraining, RetrievalIndex, RetrievalOptions, SearchOptions } from './types';
export { ATTENTION_TRAINING_DEFAULTS, MAX_LEARNED_ATTENTION_DIMS, PAPER_HEAD_DEFAULTS, RETRIEVAL_DEFAULTS, RETRIEVAL_TENSORS } from './types';
export { buildRetrievalIndex, projectRows, retrievalSearch } from './search';
export { leaveOneOutFeatures, leaveOneOutSamples, retrievalAttend, retrievalForward } from './attention';
export { attentionTrainingModel, trainLearnedAttention, YBAR_LOG_EPS, type AttentionModelSpec, type LearnedAttention } from './head';
export { fitRetrieval, lshCheck, LSH_CHECK_QUERIES, type LshCheck } from './fit';
