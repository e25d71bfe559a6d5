/**
 * Writing bytes as lower-case hex into a text buffer in place: the trace and request ids are
 * written into one reused buffer and read out as one flat string.
 *
 * @module
 */

/** Lower-case hex digits, as character codes. */
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/** Writes `n` bytes of `src` from `from` as lower-case hex into `out` at `o`. */
export function writeHex(out: Buffer, o: number, src: Buffer, from: number, n: number): void {
  for (let i = from; i < from + n; i++) {
    const v = src[i] as number;
    out[o++] = HEX[v >> 4] as number;
    out[o++] = HEX[v & 15] as number;
  }
}
