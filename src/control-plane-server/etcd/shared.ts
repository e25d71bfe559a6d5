/**
 * Small values shared by `meshlet control-plane` replicas (the token signing key), under
 * `<prefix>/shared/<key>`: the first writer wins, atomically.
 *
 * @module
 */
import type { SharedValues } from '../store.ts';
import { type EtcdClient, EtcdError } from './client.ts';

/** {@link SharedValues} in etcd: `putIfAbsent` is a txn on `create_revision == 0`. */
export class EtcdSharedValues implements SharedValues {
  readonly #client: EtcdClient;
  readonly #root: string;

  /** @param prefix key prefix shared by the replicas (default '/meshlet'). */
  constructor(client: EtcdClient, prefix = '/meshlet') {
    this.#client = client;
    this.#root = `${prefix.replace(/\/+$/, '')}/shared/`;
  }

  /** Stores `value` unless a value is there; resolves to the value that is there now. */
  async putIfAbsent(key: string, value: string): Promise<string> {
    const k = this.#root + key;
    const res = await this.#client.txn([{ key: k, target: 'CREATE', result: 'EQUAL', revision: 0 }], [{ put: { key: k, value } }], [{ range: { key: k } }]);
    if (res.succeeded) return value;
    const existing = res.responses[0]?.kvs?.[0];
    // The compare and the read happen at one revision, so the key is there.
    if (existing === undefined) throw new EtcdError('kv/txn', `etcd shared value ${k}: the txn failed but returned no value`);
    return existing.value;
  }
}
