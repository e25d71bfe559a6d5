/**
 * How a config write too big for one etcd txn is cut into several. etcd refuses a txn with more
 * than `--max-txn-ops` operations or compares (128 by default: `too many operations in txn
 * request`) or a request over `--max-request-bytes` (1.5 MiB by default). One apply of 130
 * resources, or a `--config` directory of 64 (each resource is put with its owner record), would
 * otherwise be refused whole — a replica with such a directory could not even start.
 *
 * A write that fits is still one txn. A bigger one is committed as consecutive txns, in order,
 * each guarded like the first (nothing under the prefix changed since the previous one): as with
 * `kubectl apply -f` of many objects, which writes them one by one, replicas may serve the sets in
 * between for a moment. A resource's owner record goes in the same txn as the resource.
 *
 * @module
 */
import { EtcdError, type TxnOp } from './client.ts';

/**
 * Operations one txn carries at most, besides the write marker: etcd's default `--max-txn-ops`
 * (128) less the marker's put and the two compares every txn has (each written config key is
 * compared too).
 */
export const TXN_OPS = 125;

/** Bytes of keys and values one txn carries at most: under etcd's default `--max-request-bytes` (1.5 MiB), with room for the rest. */
export const TXN_BYTES = 1024 * 1024;

const opKey = (op: TxnOp): string => ('put' in op ? op.put.key : 'delete' in op ? op.delete.key : op.range.key);
const opBytes = (op: TxnOp): number => Buffer.byteLength(opKey(op)) + ('put' in op ? Buffer.byteLength(op.put.value) : 0);

/**
 * Cuts `ops` into batches of at most `maxOps` operations and `maxBytes` bytes, in order, never
 * separating the ops of one resource (its config key and its owner record, `<owners><Kind>/…`
 * for `<root><Kind>/…`). A resource bigger than `maxBytes` gets a batch of its own (etcd judges it).
 */
export function txnBatches(ops: readonly TxnOp[], roots: { readonly root: string; readonly owners: string }, maxOps = TXN_OPS, maxBytes = TXN_BYTES): TxnOp[][] {
  const resourceOf = (op: TxnOp): string => {
    const key = opKey(op);
    return key.startsWith(roots.owners) ? key.slice(roots.owners.length) : key.startsWith(roots.root) ? key.slice(roots.root.length) : key;
  };
  // The ops of one resource, adjacent in the plan (see config-writes.ts), form one group.
  const groups: TxnOp[][] = [];
  for (const op of ops) {
    const last = groups.at(-1);
    if (last !== undefined && resourceOf(last[0]!) === resourceOf(op)) last.push(op);
    else groups.push([op]);
  }
  const batches: TxnOp[][] = [];
  let batch: TxnOp[] = [];
  let bytes = 0;
  for (const group of groups) {
    const size = group.reduce((n, op) => n + opBytes(op), 0);
    if (batch.length > 0 && (batch.length + group.length > maxOps || bytes + size > maxBytes)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(...group);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** `Kind ns/name` of a config key relative to the config root (`Kind/ns/name`), as apply answers name resources. */
export function refOf(relativeKey: string): string {
  const [kind, namespace, ...name] = relativeKey.split('/');
  return `${kind} ${namespace}/${name.join('/')}`;
}

const TOO_BIG = /too many operations in txn request|request is too large/;

/** An etcd refusal of a txn's size, with what to do about it (etcd runs with limits below its defaults). */
export function tooBigHint(err: unknown): unknown {
  if (!(err instanceof EtcdError) || !TOO_BIG.test(err.message)) return err;
  return new EtcdError(
    err.operation,
    `${err.message}: a config write is cut into txns of at most ${TXN_OPS} operations and ${TXN_BYTES} bytes (etcd's defaults allow 128 and 1.5 MiB); run etcd with --max-txn-ops and --max-request-bytes at least at their defaults`,
    { cause: err, ...(err.grpcCode === undefined ? {} : { grpcCode: err.grpcCode }) },
  );
}
