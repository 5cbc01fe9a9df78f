/**
 * Bilinear resizing with half-pixel centres, matching PyTorch's
 * F.interpolate(mode='bilinear', align_corners=False, antialias=False).
 */

interface AxisTable {
  lo: Int32Array; // left/top source index
  hi: Int32Array; // right/bottom source index (clamped to the edge)
  t: Float64Array; // weight of `hi`
}

function axisTable(inSize: number, outSize: number): AxisTable {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const t = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    // Centre of output pixel d in input coordinates; PyTorch clamps negatives to 0 (edge replication).
    const src = Math.max(0, (d + 0.5) * scale - 0.5);
    lo[d] = Math.min(Math.floor(src), inSize - 1);
    hi[d] = Math.min(lo[d] + 1, inSize - 1);
    t[d] = src - lo[d];
  }
  return { lo, hi, t };
}

/** Resizes one interleaved H×W×C image. */
export function resizeBilinear(src: ArrayLike<number>, inH: number, inW: number, channels: number, outH: number, outW: number): Float32Array {
  const ys = axisTable(inH, outH);
  const xs = axisTable(inW, outW);
  const out = new Float32Array(outH * outW * channels);
  const row = inW * channels;
  let o = 0;
  for (let y = 0; y < outH; y++) {
    const r0 = ys.lo[y] * row;
    const r1 = ys.hi[y] * row;
    const ty = ys.t[y];
    for (let x = 0; x < outW; x++) {
      const c0 = xs.lo[x] * channels;
      const c1 = xs.hi[x] * channels;
      const tx = xs.t[x];
      for (let c = 0; c < channels; c++) {
        const top = src[r0 + c0 + c] * (1 - tx) + src[r0 + c1 + c] * tx;
        const bottom = src[r1 + c0 + c] * (1 - tx) + src[r1 + c1 + c] * tx;
        out[o++] = top * (1 - ty) + bottom * ty;
      }
    }
  }
  return out;
}
