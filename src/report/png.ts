/** PNG data URIs for the example images embedded in exported HTML reports (pngjs, already a dependency). */
import { PNG } from 'pngjs';

/** A data: URI of an RGBA image (4 bytes per pixel, row-major). */
export function pngDataUri(rgba: Uint8ClampedArray, width: number, height: number): string {
  const png = new PNG({ width, height });
  png.data = Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength);
  return `data:image/png;base64,${PNG.sync.write(png).toString('base64')}`;
}
