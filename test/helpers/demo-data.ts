/** The bundled demo images, preprocessed for the demo model, and a relative-error measure. */
import { loadDataset, preprocess } from '../../src/core/data';

export async function demoImages(images: string, labels: string, limit?: number): Promise<{ x: Float32Array; labels: Int32Array; count: number }> {
  const raw = await loadDataset({ path: images, labelsPath: labels, limit });
  return { x: preprocess(raw, { layout: 'NCHW', channels: 1, height: 28, width: 28 }), labels: raw.labels!, count: raw.count };
}

/** ‖a − b‖₂ / ‖b‖₂. */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
