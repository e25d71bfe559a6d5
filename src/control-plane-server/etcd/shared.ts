/**
 * Small values shared by `meshlet control-plane` replicas (the token signing key, the CA), under
 * `<prefix>/shared/<key>`: the first writer wins, atomically; a change is a compare-and-swap on
 * the value, and replicas watch the key to pick it up.
 *
 * @module
 */
import type { SharedValues, SharedWatch } from '../store.ts';
import { type EtcdClient, EtcdError } from './client.ts';
import { PrefixWatch } from './watch.ts';

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

  /** Replaces the value when it is `expected` (a txn comparing the value); resolves to the value there now. */
  async compareAndSwap(key: string, expected: string, value: string): Promise<{ swapped: boolean; value: string }> {
    const k = this.#root + key;
    const res = await this.#client.txn([{ key: k, target: 'VALUE', result: 'EQUAL', value: expected }], [{ put: { key: k, value } }], [{ range: { key: k } }]);
    if (res.succeeded) return { swapped: true, value };
    const existing = res.responses[0]?.kvs?.[0];
    if (existing === undefined) throw new EtcdError('kv/txn', `etcd shared value ${k}: it is gone (deleted by hand?); restart a replica to store it again`);
    return { swapped: false, value: existing.value };
  }

  /** Watches the key (list, then changes; resumes after failures and compactions); `onDelete` when it is not there. */
  watch(key: string, listener: (value: string) => void, onDelete?: () => void): SharedWatch {
    const k = this.#root + key;
    let last: string | undefined;
    const deliver = (value: string): void => {
      if (value === last) return;
      last = value;
      listener(value);
    };
    const deleted = (): void => {
      last = undefined;
      onDelete?.();
    };
    const w = new PrefixWatch(this.#client, k, {
      onSnapshot: (kvs) => {
        const kv = kvs.find((v) => v.key === k);
        if (kv !== undefined) deliver(kv.value);
        else deleted();
      },
      onEvents: (events) => {
        for (const e of events) {
          if (e.kv.key !== k) continue;
          if (e.type === 'PUT') deliver(e.kv.value);
          else deleted();
        }
      },
    });
    let closed = false;
    let retry: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
    // The first list may fail (etcd unreachable): try again until it works or the watch is closed.
    const start = (delayMs: number): Promise<void> =>
      w.start().catch(
        () =>
          new Promise<void>((resolve) => {
            if (closed) return resolve();
            retry = { timer: setTimeout(() => resolve(start(Math.min(delayMs * 2, 5000))), delayMs), resolve };
          }),
      );
    const started = start(200);
    return {
      close: async () => {
        closed = true;
        if (retry !== undefined) {
          clearTimeout(retry.timer);
          retry.resolve();
        }
        await w.close();
        await started;
      },
    };
  }
}
