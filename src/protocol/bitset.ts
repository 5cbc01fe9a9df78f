/**
 * Per-sample flags stored compactly in result files: bit i of the base64 string is sample i's flag
 * (least significant bit first within each byte). Pure functions, no Node or DOM APIs beyond
 * btoa/atob, so the webview and the report read them too.
 */

export function encodeBits(flags: ArrayLike<number | boolean>): string {
  const bytes = new Uint8Array(Math.ceil(flags.length / 8));
  for (let i = 0; i < flags.length; i++) if (flags[i]) bytes[i >> 3] |= 1 << (i & 7);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

/** The first `count` flags of an encoded bitset; throws on a string that is too short or not base64. */
export function decodeBits(encoded: string, count: number): Uint8Array {
  const binary = atob(encoded);
  if (binary.length * 8 < count) throw new RangeError(`bitset of ${binary.length * 8} bits for ${count} samples`);
  const flags = new Uint8Array(count);
  for (let i = 0; i < count; i++) flags[i] = (binary.charCodeAt(i >> 3) >> (i & 7)) & 1;
  return flags;
}
