/**
 * The retrieval graph: search in the projected space, exact (MatMul + TopK) or LSH (Hamming-ball
 * multi-probe candidates as ops, lsh.ts, then the exact distances of the candidates only, +∞ for
 * the rest, and TopK), attention β = s·hᵀU h_n (U an initializer when learned), h̄ and ȳ, with the
 * database as initializers.
 */
import type { GraphBuilder } from '../../onnx/builder';
import type { TensorProto } from '../../onnx/proto';
import { floatTensor } from '../../onnx/tensor-proto';
import { addKnnSearch } from '../knn';
import { addLshCandidateMask } from '../lsh';
import { DEFENSE_IO } from '../types';
import { RETRIEVAL_TENSORS, type RetrievalIndex } from './types';

export function retrievalInitializers(index: RetrievalIndex): TensorProto[] {
  const onehot = new Float32Array(index.n * index.numClasses);
  for (let i = 0; i < index.n; i++) onehot[i * index.numClasses + index.labels[i]] = 1;
  const init = [
    floatTensor(RETRIEVAL_TENSORS.database, [index.n, index.size], index.database),
    floatTensor(RETRIEVAL_TENSORS.labels, [index.n, index.numClasses], onehot),
  ];
  if (index.projection) {
    const p = index.projectionDims;
    const D = index.size;
    const wt = new Float32Array(D * p);
    for (let c = 0; c < p; c++) for (let j = 0; j < D; j++) wt[j * p + c] = index.projection[c * D + j];
    init.push(floatTensor(RETRIEVAL_TENSORS.projection, [D, p], wt));
  }
  if (index.attention) init.push(floatTensor(RETRIEVAL_TENSORS.attentionMatrix, [index.size, index.size], index.attention));
  return init;
}

/** Retrieval + attention in the graph: flat h → search on h' (exact or LSH) → α → h̄ [N, D] and ȳ [N, C]. */
export function addRetrievalAttention(g: GraphBuilder, index: RetrievalIndex, search: 'exact' | 'lsh' = 'exact'): { hbar: string; ybar: string } {
  const D = index.size;
  const C = index.numClasses;
  const N = index.neighbours;
  const flat = g.op('Flatten', [DEFENSE_IO.activation], { axis: 1 });
  if (index.projection) g.node('MatMul', [flat, RETRIEVAL_TENSORS.projection], {}, [RETRIEVAL_TENSORS.key]);
  else g.node('Identity', [flat], {}, [RETRIEVAL_TENSORS.key]);
  let candidates: string | undefined;
  if (search === 'lsh') {
    candidates = RETRIEVAL_TENSORS.candidates;
    g.node('Identity', [addLshCandidateMask(g, RETRIEVAL_TENSORS.key, index.lsh, N)], {}, [candidates]);
  }
  const { indices } = addKnnSearch(
    g,
    RETRIEVAL_TENSORS.key,
    index.keys,
    index.n,
    index.keyDims,
    N,
    index.distance,
    { indices: RETRIEVAL_TENSORS.indices },
    { candidates },
  );
  const hn = g.op('Gather', [RETRIEVAL_TENSORS.database, indices], { axis: 0 }); // [B, N, D]
  const q = g.op('Reshape', [flat, g.int64Const('shape', [-1, 1, D])]); // [B, 1, D]
  const qu = index.attention ? g.op('MatMul', [q, RETRIEVAL_TENSORS.attentionMatrix]) : q; // hᵀU
  const beta = g.op('Mul', [g.op('MatMul', [qu, g.op('Transpose', [hn], { perm: [0, 2, 1] })]), g.scalar(index.scale, 'attention_scale')]); // [B, 1, N]
  const alpha = g.op('Softmax', [beta], { axis: -1 });
  g.node('Reshape', [alpha, g.int64Const('shape', [-1, N])], {}, [RETRIEVAL_TENSORS.alpha]);
  g.node('Reshape', [g.op('MatMul', [alpha, hn]), g.int64Const('shape', [-1, D])], {}, [RETRIEVAL_TENSORS.hbar]);
  const yn = g.op('Gather', [RETRIEVAL_TENSORS.labels, indices], { axis: 0 }); // [B, N, C]
  g.node('Reshape', [g.op('MatMul', [alpha, yn]), g.int64Const('shape', [-1, C])], {}, [RETRIEVAL_TENSORS.ybar]);
  return { hbar: RETRIEVAL_TENSORS.hbar, ybar: RETRIEVAL_TENSORS.ybar };
}
