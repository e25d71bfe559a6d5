/**
 * `x-request-id` values as Envoy generates them for a request without one: a random (version 4)
 * UUID. The random bytes come from `crypto.randomFillSync`, as Envoy's come from BoringSSL's
 * `RAND_bytes`, 4 KiB at a time (256 ids); the 256 ids are written as text together and read out
 * as one string, of which each id is a slice (one call into C++ per 256 ids rather than one per
 * id: ~0.1 µs less per generated id). `crypto.randomUUID()` (the same kind of id, from Node's own
 * buffer of random bytes) builds its text from twenty string pieces, which undici flattens again
 * when it checks the header value.
 *
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { writeHex } from './hex.ts';

/** Ids made per refill: 4 KiB of random bytes, as before. */
const IDS = 256;
const POOL = Buffer.alloc(16 * IDS);
/** The ids of one refill as text, one after the other: their dashes stay, their 32 hex digits are written over. */
const TEXT = Buffer.from('00000000-0000-4000-8000-000000000000'.repeat(IDS), 'latin1');
/** The text of the current refill's ids, read out of TEXT once (one string per 256 ids, not one call into C++ per id). */
let ids = '';
let next = IDS;

/** Draws 256 new ids: random bytes, the version and variant bits, the hex text, one string. */
function refill(): void {
  randomFillSync(POOL);
  for (let k = 0; k < IDS; k++) {
    const at = 16 * k;
    const o = 36 * k;
    // The version (4) and the variant (10xx) bits.
    POOL[at + 6] = ((POOL[at + 6] as number) & 0x0f) | 0x40;
    POOL[at + 8] = ((POOL[at + 8] as number) & 0x3f) | 0x80;
    writeHex(TEXT, o, POOL, at, 4);
    writeHex(TEXT, o + 9, POOL, at + 4, 2);
    writeHex(TEXT, o + 14, POOL, at + 6, 2);
    writeHex(TEXT, o + 19, POOL, at + 8, 2);
    writeHex(TEXT, o + 24, POOL, at + 10, 6);
  }
  ids = TEXT.toString('latin1');
  next = 0;
}

/**
 * A new random UUID (RFC 9562 version 4, lower-case), for `x-request-id`: a 36-character slice of
 * the current refill's text (V8 makes it a view of that string, which it keeps alive: 9 KiB per
 * 256 ids, and flat — nothing to join when undici checks it or a socket writes it).
 */
export function newRequestId(): string {
  if (next === IDS) refill();
  const at = 36 * next++;
  return ids.slice(at, at + 36);
}
