/**
 * `x-request-id` values as Envoy generates them for a request without one: a random (version 4)
 * UUID. The random bytes come from `crypto.randomFillSync`, as Envoy's come from BoringSSL's
 * `RAND_bytes`, 4 KiB at a time (256 ids); each id is written as text in one go and read out as
 * one flat string. `crypto.randomUUID()` (the same kind of id, from Node's own buffer of random
 * bytes) builds its text from twenty string pieces, which undici flattens again when it checks
 * the header value.
 *
 * @module
 */
import { randomFillSync } from 'node:crypto';

const POOL = Buffer.alloc(4096);
let used = POOL.length;
/** Lower-case hex digits, as character codes. */
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** The id being written: its dashes stay, its 32 hex digits are written over. */
const TEXT = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');

/** A new random UUID (RFC 9562 version 4, lower-case), for `x-request-id`. */
export function newRequestId(): string {
  if (used + 16 > POOL.length) {
    randomFillSync(POOL);
    used = 0;
  }
  const at = used;
  used += 16;
  let o = 0;
  for (let i = 0; i < 16; i++) {
    if (o === 8 || o === 13 || o === 18 || o === 23) o++;
    let v = POOL[at + i] as number;
    // The version (4) and the variant (10xx) bits.
    if (i === 6) v = (v & 0x0f) | 0x40;
    else if (i === 8) v = (v & 0x3f) | 0x80;
    TEXT[o++] = HEX[v >> 4] as number;
    TEXT[o++] = HEX[v & 15] as number;
  }
  return TEXT.toString('latin1');
}
