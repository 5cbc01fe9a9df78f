/**
 * Small curves of a series of numbers (a defense's loss per epoch): the geometry the webview and the
 * HTML export draw as an SVG polyline, and a one-line Unicode version for Markdown and text.
 */

export interface Sparkline {
  /** SVG polyline points, "x,y x,y …", in a width × height box (y grows downwards). */
  points: string;
  width: number;
  height: number;
  min: number;
  max: number;
  first: number;
  last: number;
  count: number;
}

/** Finite values only; undefined when fewer than two are left. */
export function sparkline(values: readonly number[], width = 160, height = 36, pad = 2): Sparkline | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length < 2) return undefined;
  const min = Math.min(...v);
  const max = Math.max(...v);
  const span = max > min ? max - min : 1;
  const points = v
    .map((x, i) => {
      const px = pad + (i * (width - 2 * pad)) / (v.length - 1);
      const py = max > min ? pad + ((max - x) * (height - 2 * pad)) / span : height / 2;
      return `${Number(px.toFixed(2))},${Number(py.toFixed(2))}`;
    })
    .join(' ');
  return { points, width, height, min, max, first: v[0], last: v[v.length - 1], count: v.length };
}

const BLOCKS = '▁▂▃▄▅▆▇█';

/** "▇▅▃▂▁▁": one block per value (at most `maxChars`, evenly sampled), the lowest value ▁, the highest █. */
export function unicodeSparkline(values: readonly number[], maxChars = 40): string {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return '';
  const picked = v.length <= maxChars ? v : Array.from({ length: maxChars }, (_, i) => v[Math.round((i * (v.length - 1)) / (maxChars - 1))]);
  const min = Math.min(...picked);
  const max = Math.max(...picked);
  return picked.map((x) => BLOCKS[max > min ? Math.round(((x - min) / (max - min)) * (BLOCKS.length - 1)) : 0]).join('');
}

/** The SVG markup of a sparkline (for the HTML export; the webview builds the same with DOM calls). */
export function sparklineSvg(s: Sparkline, stroke = '#1f77b4'): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="sparkline" width="${s.width}" height="${s.height}" viewBox="0 0 ${s.width} ${s.height}" role="img"><polyline fill="none" stroke="${stroke}" stroke-width="1.5" points="${s.points}"/></svg>`;
}
