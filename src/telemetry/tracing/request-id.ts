/**
 * `x-request-id` values as Envoy generates them for a request without one: a random (version 4)
 * UUID. The random bytes come from the ids' pool (random-pool.ts: `crypto.randomFillSync`, as
 * Envoy's come from BoringSSL's `RAND_bytes`); each id is written as text in one go and read out
 * as one flat string. `crypto.randomUUID()` (the same kind of id, from Node's own buffer of random
 * bytes) builds its text from twenty string pieces, which undici flattens again when it checks
 * the header value.
 *
 * @module
 */
import { writeHex } from './hex.ts';
import { POOL, takeRandom } from './random-pool.ts';

/** The id being written: its dashes stay, its 32 hex digits are written over. */
const TEXT = Buffer.from('00000000-0000-4000-8000-000000000000', 'latin1');

/** A new random UUID (RFC 9562 version 4, lower-case), for `x-request-id`. */
export function newRequestId(): string {
  const at = takeRandom(16);
  // The version (4) and the variant (10xx) bits.
  POOL[at + 6] = ((POOL[at + 6] as number) & 0x0f) | 0x40;
  POOL[at + 8] = ((POOL[at + 8] as number) & 0x3f) | 0x80;
  writeHex(TEXT, 0, POOL, at, 4);
  writeHex(TEXT, 9, POOL, at + 4, 2);
  writeHex(TEXT, 14, POOL, at + 6, 2);
  writeHex(TEXT, 19, POOL, at + 8, 2);
  writeHex(TEXT, 24, POOL, at + 10, 6);
  return TEXT.toString('latin1');
}
