/**
 * How the etcd config store commits a planned write, and how far a read of the config reaches.
 *
 * Every store write stamps the write marker (`<prefix>/meta/config-write`) in each of its txns,
 * so a concurrent deletion by another replica fails the next write's compare. The marker also
 * says which revision last changed a config key: a txn that writes one is that revision itself
 * (the marker's mod_revision); one that writes only owner records (a file sync re-marking what a
 * directory defines) carries the revision of the last that did (`config`). With the newest
 * value's mod_revision, that is the revision a replica's watch must have delivered before the
 * replica's served state is the state the read saw ({@link configRevisionOf}).
 *
 * @module
 */
import type { ApplyResponse } from '../../control-plane/protocol.ts';
import type { Compare, EtcdClient, KeyValue, TxnOp } from './client.ts';
import { parse } from './config-check.ts';
import { refOf, tooBigHint, txnBatches } from './txn-batches.ts';

/** Where a write reads and commits. */
export interface CommitKeys {
  /** `<prefix>/config/`. */
  readonly root: string;
  /** `<prefix>/meta/config-write`. */
  readonly marker: string;
  /** `<prefix>/owners/`. */
  readonly owners: string;
}

/** What a write read: its revision, the marker, and each config key's mod_revision. */
export interface ReadRevisions {
  readonly revision: number;
  /** The marker as read (absent before the first store write). */
  readonly marker: KeyValue | undefined;
  readonly modRevisions: ReadonlyMap<string, number>;
}

/** The revision of the last store write that changed a config key, as the marker read says. */
function lastConfigWrite(marker: KeyValue | undefined): number {
  if (marker === undefined) return 0;
  const config = (parse(marker.value) as { config?: unknown } | undefined)?.config;
  return typeof config === 'number' ? config : marker.modRevision;
}

/**
 * The newest revision that changed the config as far as a read can tell: the newest value's,
 * or the last store write's that changed one (a deletion leaves no value behind, but stamps the
 * marker). A deletion made with `etcdctl` leaves no trace in the read.
 */
export function configRevisionOf(kvs: readonly KeyValue[], marker: KeyValue | undefined): number {
  return kvs.reduce((rev, kv) => Math.max(rev, kv.modRevision), lastConfigWrite(marker));
}

/**
 * Commits `ops` in as few txns as etcd takes ({@link txnBatches}: one unless the write is big),
 * each guarded by: nothing under the prefix created or modified and no store write (catches
 * deletions) since the read or the previous txn, each config key it writes as read (0: absent).
 * Resolves to the revision of the last txn that wrote a config key — what the watch of the config
 * delivers (a txn of owner records alone never reaches it) — or, when none did, to the last such
 * revision before the write; undefined when a guard failed (`committed` has the rest).
 */
export async function commitWrite(
  client: EtcdClient,
  keys: CommitKeys,
  origin: string,
  ops: readonly TxnOp[],
  read: ReadRevisions,
  planned: readonly ApplyResponse['applied'][number][],
  committed: Map<string, ApplyResponse['applied'][number]['action']>,
): Promise<number | undefined> {
  const at = new Date().toISOString();
  const actions = new Map(planned.map((a) => [a.ref, a.action]));
  let revision = read.revision;
  let marker = read.marker?.modRevision ?? 0;
  let config = lastConfigWrite(read.marker);
  for (const batch of txnBatches(ops, { root: keys.root, owners: keys.owners })) {
    const written = batch.flatMap((op) => ('put' in op ? [op.put.key] : 'delete' in op ? [op.delete.key] : [])).filter((k) => k.startsWith(keys.root));
    const compare: Compare[] = [
      { key: keys.root, prefix: true, target: 'MOD', result: 'LESS', revision: revision + 1 },
      { key: keys.marker, target: 'MOD', result: 'EQUAL', revision: marker },
      ...written.map((key): Compare => ({ key, target: 'MOD', result: 'EQUAL', revision: read.modRevisions.get(key) ?? 0 })),
    ];
    const stamp: TxnOp = { put: { key: keys.marker, value: JSON.stringify({ origin, at, ...(written.length > 0 ? {} : { config }) }) } };
    const res = await client.txn(compare, [...batch, stamp]).catch((err: unknown) => {
      throw tooBigHint(err);
    });
    if (!res.succeeded) return undefined;
    revision = marker = res.revision;
    if (written.length > 0) config = res.revision;
    for (const key of written) {
      const ref = refOf(key.slice(keys.root.length));
      const action = actions.get(ref);
      if (action !== undefined && action !== 'unchanged') committed.set(ref, action);
    }
  }
  return config;
}
