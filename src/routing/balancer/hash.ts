/**
 * 32-bit string hashes for consistent hashing. {@link hash32} (MurmurHash3 x86_32) hashes
 * request keys and ring points; {@link hash32b} (FNV-1a with the Murmur3 finaliser) is an
 * independent second hash that gives Maglev its `skip`. Both read UTF-16 code units
 * directly, so hashing a string allocates nothing.
 *
 * The values are not Envoy's (Envoy uses 64-bit xxHash over UTF-8); only the properties
 * matter: deterministic, well spread, and independent of each other.
 *
 * @module
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/** Murmur3's 32-bit finaliser: full avalanche of a 32-bit value. Returns a uint32. */
export function fmix32(h: number): number {
  let x = h | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * MurmurHash3 (x86, 32-bit) of a string's UTF-16 code units, two units per 32-bit block.
 * @param s the string
 * @param seed optional seed
 * @returns a uint32
 * @example hash32('user-42') // the same value on every call and every process
 */
export function hash32(s: string, seed = 0): number {
  let h = seed | 0;
  const n = s.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = (s.charCodeAt(i) & 0xffff) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = s.charCodeAt(i) & 0xffff;
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= n * 2;
  return fmix32(h);
}

/**
 * A second, independent 32-bit hash: FNV-1a over the low and high byte of each UTF-16 code
 * unit, then the Murmur3 finaliser for avalanche. Used for Maglev's `skip`.
 * @returns a uint32
 */
export function hash32b(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h ^= c & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= c >>> 8;
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/**
 * The `PickRequest.hash` for a consistent-hash key: {@link hash32} of the key, or -1
 * when the request has none (the picker then draws at random).
 */
export function requestHash(key: string | undefined): number {
  return key === undefined ? -1 : hash32(key);
}
