/**
 * The etcd JSON gateway's encoding: base64 keys and values, int64s as strings, zero values
 * omitted, enums by name; and the decoded shapes the client works with (key-values, txn
 * compares and operations).
 *
 * @module
 */

/** A key-value pair as etcd stores it (key and value decoded as UTF-8). */
export interface KeyValue {
  /** The key. */
  readonly key: string;
  /** The value ('' for a deleted key in a watch event). */
  readonly value: string;
  /** Revision of the key's creation (0: absent). */
  readonly createRevision: number;
  /** Revision of the key's last change. */
  readonly modRevision: number;
  /** Number of changes since creation. */
  readonly version: number;
  /** The lease id ('' when none). Lease ids are int64: kept as strings. */
  readonly lease: string;
}

/** A txn comparison: a revision target of a key (or a key range), or its value. */
export type Compare =
  | {
      readonly key: string;
      /** Compares every key that starts with `key` instead of one key. */
      readonly prefix?: boolean;
      readonly target: 'MOD' | 'CREATE' | 'VERSION';
      readonly result: 'EQUAL' | 'NOT_EQUAL' | 'GREATER' | 'LESS';
      readonly revision: number;
    }
  | { readonly key: string; readonly target: 'VALUE'; readonly result: 'EQUAL' | 'NOT_EQUAL'; readonly value: string };

/** One operation of a txn branch. */
export type TxnOp =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: string } }
  | { readonly delete: { readonly key: string; readonly prefix?: boolean } }
  | { readonly range: { readonly key: string; readonly prefix?: boolean } };

/** A gateway JSON object. */
export type Json = Record<string, unknown>;

/** UTF-8 text → base64. */
export const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
/** base64 → UTF-8 text ('' when absent). */
export const unb64 = (s: unknown): string => (typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '');
/** An int64 string (or absent zero) → number. */
export const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v));

/** etcd's `range_end` (base64) for every key starting with `prefix`: the prefix with its last byte below 0xff incremented. */
export function prefixRangeEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

/** Decodes a gateway `mvccpb.KeyValue`. */
export function decodeKv(kv: Json): KeyValue {
  return {
    key: unb64(kv['key']),
    value: unb64(kv['value']),
    createRevision: num(kv['create_revision']),
    modRevision: num(kv['mod_revision']),
    version: num(kv['version']),
    lease: kv['lease'] === undefined ? '' : String(kv['lease']),
  };
}



/** A txn op in the gateway's shape. */
export function encodeOp(op: TxnOp): Json {
  if ('put' in op) {
    const p: Json = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease !== undefined && op.put.lease !== '') p['lease'] = op.put.lease;
    return { request_put: p };
  }
  if ('delete' in op) {
    const d: Json = { key: b64(op.delete.key) };
    if (op.delete.prefix === true) d['range_end'] = prefixRangeEnd(op.delete.key);
    return { request_delete_range: d };
  }
  const r: Json = { key: b64(op.range.key) };
  if (op.range.prefix === true) r['range_end'] = prefixRangeEnd(op.range.key);
  return { request_range: r };
}

/** A txn compare in the gateway's shape. */
export function encodeCompare(c: Compare): Json {
  const out: Json = { key: b64(c.key), target: c.target, result: c.result };
  if (c.target === 'VALUE') out['value'] = b64(c.value);
  else {
    out[c.target === 'MOD' ? 'mod_revision' : c.target === 'CREATE' ? 'create_revision' : 'version'] = String(c.revision);
    if (c.prefix === true) out['range_end'] = prefixRangeEnd(c.key);
  }
  return out;
}
