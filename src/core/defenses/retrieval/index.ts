/**
 * Retrieval-augmented classification as a defense (Zhao, Li & Cho, SysML 2018).
 *
 * The private database is the reference set: activations h_i at T and one-hot labels y_i.
 *  - Retrieval (paper §2): the query h is randomly projected, h' = W h, W a seeded Gaussian matrix
 *    (`projectionDims` rows, entries N(0, 1/p); 0 = no projection, search on h itself). The N
 *    (`neighbours`; paper: 5 and 10) nearest database rows are searched for in that projected
 *    space, under `distance` ('l2' default, or 'cosine').
 *  - Attention: α_n = softmax_n(β_n) with β_n = s · hᵀ U h_n on the FULL vectors h, h_n (as in the
 *    paper; U = identity — a learned U is left out). The paper has no scale s; raw dot
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
 * The ONNX defense graph searches EXACTLY (MatMul + TopK in the projected space) so that it exports
 * and differentiates (the indices are piecewise constant; the gradient flows through h in the
 * attention scores, and through the paper head). LSH (./lsh.ts) is the fast path of the JS search
 * `retrievalSearch`, for large databases; it re-ranks its candidates exactly in the same space, so
 * with enough tables/probes it returns the same neighbours as the graph.
 *
 * Layout: types.ts, search.ts (index, projection, exact and LSH search), attention.ts (the JS
 * attention and leave-one-out features), graph.ts (the ONNX search and attention), head.ts (the
 * paper head's training), fit.ts (fitRetrieval).
 */
export type { Attention, PaperHeadTraining, RetrievalIndex, RetrievalOptions, SearchOptions } from './types';
export { PAPER_HEAD_DEFAULTS, RETRIEVAL_DEFAULTS, RETRIEVAL_TENSORS } from './types';
export { buildRetrievalIndex, projectRows, retrievalSearch } from './search';
export { leaveOneOutFeatures, retrievalAttend, retrievalForward } from './attention';
export { fitRetrieval } from './fit';
