/**
 * The config of `meshlet control-plane` replicas kept in etcd: each resource is a JSON
 * WireResource under `<prefix>/config/<Kind>/<namespace>/<name>`. Every replica lists then
 * watches the prefix and re-validates the whole set on every change, whoever made it (another
 * replica, `etcdctl`).
 *
 * A stored value that is invalid on its own (not JSON, not the resource its key names, or a
 * resource that fails validation) is skipped and the rest is served, as istiod skips an invalid
 * object and serves the others (its file source logs "- skipping" per bad document): every
 * replica, whether running or starting, serves the same valid subset, and reports the skipped
 * keys (the source is unhealthy until they are repaired). An admin repairs one through the API:
 * `meshlet delete` removes the key, `meshlet apply` replaces it; bad keys a change does not touch
 * never block it. A set that is invalid as a whole (error-level analysis findings with
 * `--analysis blocking`) is refused: the last good state keeps being served (a replica cannot start
 * on one). Writes validate the resulting set and commit it in one txn that fails when
 * anything under the prefix changed since it was read (optimistic concurrency); every write also
 * stamps `<prefix>/meta/config-write` (`{ origin, at }`), so that deletions by another replica
 * are noticed too. A write too big for one txn (etcd's `--max-txn-ops`, 128 by default) is
 * committed as consecutive txns, each guarded the same way (`txn-batches.ts`).
 *
 * Resources a replica's `--config` directory defines are marked as the files' under
 * `<prefix>/owners/` ({@link syncFiles}, see `config-writes.ts`): every replica then refuses to
 * replace or delete them through the API (409 naming the file), as the file store does.
 *
 * @module
 */
import { join } from 'node:path';
import { type ConfigIssue, IssueList } from '../../config/issues.ts';
import { applyWarnings } from '../apply-warnings.ts';
import { reportFindings } from '../../config/findings.ts';
import type { AnalysisMode } from '../../config/load-config.ts';
import { systemRandom } from '../../core/clock.ts';
import { ConfigError, MeshletError } from '../../core/errors.ts';
import { jitterMs } from '../../core/jitter.ts';
import type { ApplyResponse, Rejection, SkippedValue, WireResource } from '../../control-plane/protocol.ts';
import { contentVersion } from '../../config/version.ts';
import type { ConfigState, ConfigStore, SourceHealth } from '../store.ts';
import type { EtcdClient, KeyValue } from './client.ts';
import { commitWrite, configRevisionOf } from './commit.ts';
import { type FileOwner, type FileSyncNotes, planDelete, planFileSync, planPuts, readOwners, type WriteContext, type WritePlan } from './config-writes.ts';
import { type CheckedSet, checkStoredSet, repairHint, StoredSetCache } from './config-check.ts';
import { findingsBefore } from './findings-before.ts';
import { PrefixWatch, type WatchEvent } from './watch.ts';
import { applyLabel, keyFile, WriteLabels } from './write-labels.ts';

/** Logger used by the etcd stores. */
export interface EtcdLogger {
  /** Refused changes, lost connections. */
  warn(message: string): void;
  /** Accepted changes, recoveries, retried conflicts. */
  info?(message: string): void;
}

/** How long a write waits for its watch to reach what it read before checking the read itself. */
const FINDINGS_WAIT_MS = 250;

/** Options of {@link EtcdConfigStore}. */
export interface EtcdConfigStoreOptions {
  /** Key prefix shared by the replicas. @defaultValue '/meshlet' */
  readonly prefix?: string;
  /** What analysis does to a change (see {@link AnalysisMode}). @defaultValue 'advisory' */
  readonly analysis?: AnalysisMode;
  /** Namespace of resources without one. @defaultValue 'default' */
  readonly defaultNamespace?: string;
  /** Where refused changes and watch trouble are reported. */
  readonly logger?: EtcdLogger;
  /** Commit attempts of one apply/delete before giving up with a conflict. @defaultValue 5 */
  readonly maxAttempts?: number;
  /** How long apply/delete wait for the watch to deliver their own commit. @defaultValue 2000 */
  readonly settleMs?: number;
  /** @internal Test hook: runs between the read and the commit of each attempt. */
  readonly beforeCommit?: (attempt: number) => Promise<void>;
}

const MAX_REJECTIONS = 20;

type Change = (set: Map<string, string>, owners: ReadonlyMap<string, FileOwner>, ctx: WriteContext) => WritePlan;

/** A {@link ConfigStore} backed by etcd, shared by every replica on the same prefix. */
export class EtcdConfigStore implements ConfigStore {
  readonly #client: EtcdClient;
  readonly #root: string;
  /** Written by every store write, so a concurrent delete by another replica fails the compare. */
  readonly #marker: string;
  /** `<prefix>/owners/`: which resources files define. */
  readonly #owners: string;
  readonly #analysis: AnalysisMode;
  readonly #defaultNamespace: string;
  readonly #logger: EtcdLogger | undefined;
  readonly #maxAttempts: number;
  readonly #settleMs: number;
  readonly #beforeCommit: ((attempt: number) => Promise<void>) | undefined;
  readonly #watch: PrefixWatch;
  /** The raw mirror of the prefix (key → value), good or not. */
  readonly #kvs = new Map<string, string>();
  #state: ConfigState = { version: contentVersion([]), resources: [], findings: [] };
  readonly #rejections: Rejection[] = [];
  readonly #listeners: ((state: ConfigState) => void)[] = [];
  #started: Promise<void> | undefined;
  #firstError: ConfigError | undefined;
  #loaded = false;
  #watchDown = false;
  /** Stored values skipped because they are invalid (the last validation's). */
  #skipped: ReadonlyMap<string, SkippedValue> = new Map();
  /** What the checks of the watched set reuse from one to the next. */
  readonly #watchCache = new StoredSetCache();
  /** What the checks of writes reuse (writes run one at a time, see {@link #writes}). */
  readonly #writeCache = new StoredSetCache();
  /** The changes waiting for a check of the watched set: they are checked together, after the running one. */
  #queued: { origins: string[]; first: boolean; done: Promise<void>; resolve: () => void } | undefined;
  /** The running checks of the watched set (one at a time), until none is queued. */
  #checking: Promise<void> | undefined;
  /** This replica's writes, one after the other (their checks share {@link #writeCache}). */
  #writes: Promise<unknown> = Promise.resolve();

  /** A store over `client` (shared with the registry); call {@link start} before use. */
  constructor(client: EtcdClient, options: EtcdConfigStoreOptions = {}) {
    this.#client = client;
    const prefix = (options.prefix ?? '/meshlet').replace(/\/+$/, '');
    this.#root = `${prefix}/config/`;
    this.#marker = `${prefix}/meta/config-write`;
    this.#owners = `${prefix}/owners/`;
    this.#analysis = options.analysis ?? 'advisory';
    this.#defaultNamespace = options.defaultNamespace ?? 'default';
    this.#logger = options.logger;
    this.#maxAttempts = options.maxAttempts ?? 5;
    this.#settleMs = options.settleMs ?? 2000;
    this.#beforeCommit = options.beforeCommit;
    this.#watch = new PrefixWatch(client, this.#root, {
      onSnapshot: (kvs, revision) => this.#onSnapshot(kvs, revision),
      onEvents: (events, revision) => this.#onEvents(events, revision),
      onError: (err) => {
        if (!this.#watchDown) this.#logger?.warn(`etcd config watch: ${err.message}; retrying`);
        this.#watchDown = true;
      },
      onConnected: () => {
        if (this.#watchDown) this.#logger?.info?.('etcd config watch: resumed');
        this.#watchDown = false;
      },
    });
  }

  /** The etcd endpoints, whether the last call or watch stream reached them, and the stored values skipped as invalid. */
  get health(): SourceHealth {
    const h = this.#client.health;
    const skipped = [...this.#skipped.values()];
    const errors = [h.error, skipped.length === 0 ? undefined : `${skipped.length} stored value(s) skipped as invalid: ${skipped.map((v) => v.key).join(', ')}`];
    const error = errors.filter((e) => e !== undefined).join('; ');
    const base = { kind: 'etcd' as const, location: this.#client.endpoints.join(','), healthy: h.healthy && skipped.length === 0 };
    return { ...base, ...(error === '' ? {} : { error }), ...(skipped.length === 0 ? {} : { skipped }) };
  }

  /**
   * Lists and validates the prefix, then watches it. Rejects when etcd is unreachable or the
   * valid stored values are invalid as a set (invalid values alone are skipped and reported).
   */
  start(): Promise<void> {
    this.#started ??= (async () => {
      await this.#watch.start();
      if (this.#firstError !== undefined) {
        await this.#watch.close();
        throw this.#firstError;
      }
    })();
    return this.#started;
  }

  /** The last good state (kept while etcd holds an invalid set). */
  current(): ConfigState {
    return this.#state;
  }

  /** Called after each accepted change (from any replica or etcdctl) with the new state. */
  onChange(listener: (state: ConfigState) => void): void {
    this.#listeners.push(listener);
  }

  /** Refused sets, newest first (at most 20). */
  rejections(): readonly Rejection[] {
    return this.#rejections;
  }

  /** Creates or replaces resources, committing all of them in one txn (409 for a resource files define). */
  apply(resources: readonly WireResource[], origin: string): Promise<ApplyResponse> {
    return this.#write(origin, (set, owners, ctx) => planPuts(set, owners, resources, ctx), applyLabel);
  }

  /** Deletes one resource in a txn guarded like {@link apply} (409 for a resource files define). */
  async delete(kind: string, namespace: string, name: string, origin: string): Promise<{ deleted: boolean; version: string; warnings: readonly string[] }> {
    const res = await this.#write(origin, (set, owners, ctx) => planDelete(set, owners, kind, namespace, name, ctx));
    return { deleted: res.applied.length > 0, version: res.version, warnings: res.warnings };
  }

  /**
   * Makes etcd hold what the `--config` directory `dir` (absolute) defines, in one txn: its
   * resources are put and marked as their files' (the API then refuses to change them), and the
   * ones marked as `dir`'s that it no longer defines are deleted. Throws `ConfigError` when the
   * resulting set is invalid.
   */
  async syncFiles(dir: string, host: string, resources: readonly { wire: WireResource; file: string }[], origin: string): Promise<ApplyResponse & FileSyncNotes> {
    let notes: FileSyncNotes = { deleted: [], tookOver: [] };
    const res = await this.#write(
      origin,
      (set, owners, ctx) => {
        notes = { deleted: [], tookOver: [] };
        return planFileSync(set, owners, resources, ctx, { dir, host }, notes);
      },
      (i) => (i < resources.length ? join(dir, resources[i]!.file) : undefined),
    );
    return { ...res, ...notes };
  }

  /** Stops watching (the client is closed by its owner). */
  async close(): Promise<void> {
    await this.#watch.close();
  }

  /**
   * Reads the prefix, lets `change` edit the key → value map, validates the result and commits
   * the ops guarded by every read key's mod_revision and "no key newer than the read". `labelOf`: what the refusal and warnings call the i-th resource written (an apply's `<apply>[i]`, a synced file), as the file store does.
   */
  #write(origin: string, change: Change, labelOf?: (i: number) => string | undefined): Promise<ApplyResponse> {
    const run = this.#writes.then(() => this.#writeNow(origin, change, labelOf));
    this.#writes = run.catch(() => undefined);
    return run;
  }

  async #writeNow(origin: string, change: Change, labelOf: ((i: number) => string | undefined) | undefined): Promise<ApplyResponse> {
    // What earlier attempts committed: a write cut into several txns may have committed some of them.
    const committed = new Map<string, ApplyResponse['applied'][number]['action']>();
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      // one consistent read of the config, of the write marker and of the file owners (every change of them stamps the marker)
      const read = await this.#client.txn([], [{ range: { key: this.#root, prefix: true } }, { range: { key: this.#marker } }, { range: { key: this.#owners, prefix: true } }]);
      const kvs = read.responses[0]?.kvs ?? [];
      const marker = read.responses[1]?.kvs?.[0];
      const set = new Map(kvs.map((kv) => [kv.key, kv.value]));
      const ctx: WriteContext = { root: this.#root, owners: this.#owners, defaultNamespace: this.#defaultNamespace, now: new Date().toISOString() };
      const { ops, touched, applied: planned } = change(set, readOwners(read.responses[2]?.kvs ?? [], ctx), ctx);
      const applied = planned.map((a) => (a.action === 'unchanged' && committed.has(a.ref) ? { ref: a.ref, action: committed.get(a.ref)! } : a));
      const checked = await this.#check(set, this.#writeCache);
      // What the change writes must be valid; bad values it does not touch are skipped, not in the way.
      const badWrites = touched.filter((k) => checked.skipped.has(k) && set.has(k));
      const labels = new WriteLabels(touched, labelOf);
      if (badWrites.length > 0 || !checked.ok) {
        const issues = new IssueList();
        for (const k of badWrites) for (const r of checked.skipped.get(k)!.reasons) issues.file(keyFile(k), undefined, 'error', r);
        throw new ConfigError([...issues.all, ...checked.issues.all].map((i) => labels.relabel(i)));
      }
      const refs = new Set(applied.map((a) => a.ref));
      const touches = (i: ConfigIssue) => labels.touches(i) || (i.resource !== undefined && refs.has(i.resource));
      const before = await findingsBefore({
        watch: this.#watch,
        revision: configRevisionOf(kvs, marker),
        // Bounded well below settleMs: the wait sits between the read and the guarded commit, and a
        // longer one would let frequent writers of other replicas make this write's guard fail.
        waitMs: Math.min(this.#settleMs, FINDINGS_WAIT_MS),
        served: () => this.#state.findings,
        checkRead: () => this.#check(new Map(kvs.map((kv) => [kv.key, kv.value])), new StoredSetCache()),
        logger: this.#logger,
        origin,
      });
      const warnings = applyWarnings({ issues: checked.issues.all, findings: checked.state.findings, before, touches, text: (i) => labels.text(i) });
      for (const v of checked.skipped.values()) {
        warnings.push(`${v.key}: skipped, not served: ${v.reasons.join('; ')} (${repairHint(v)})`);
      }
      if (ops.length === 0) return { version: checked.state.version, applied, warnings };
      await this.#beforeCommit?.(attempt);
      const keys = { root: this.#root, marker: this.#marker, owners: this.#owners };
      const revision = await commitWrite(this.#client, keys, origin, ops, { revision: read.revision, marker, modRevisions: new Map(kvs.map((kv) => [kv.key, kv.modRevision])) }, planned, committed);
      if (revision === undefined) {
        this.#logger?.info?.(`etcd config: ${origin}: the config changed while applying (attempt ${attempt}); retrying`);
        await new Promise((r) => setTimeout(r, jitterMs(systemRandom, 10 * attempt)));
        continue;
      }
      await this.#watch.waitFor(revision, this.#settleMs);
      return { version: checked.state.version, applied, warnings };
    }
    throw new MeshletError('MESHLET_ERR_CONTROL_PLANE', `etcd config: ${origin}: conflict: the config kept changing during ${this.#maxAttempts} attempts; try again`, {
      httpStatus: 409,
    });
  }

  /** Validates a key → value set the same way on every replica (see {@link checkStoredSet}). */
  #check(set: ReadonlyMap<string, string>, cache: StoredSetCache): Promise<CheckedSet> {
    return checkStoredSet(set, { root: this.#root, analysis: this.#analysis, defaultNamespace: this.#defaultNamespace }, cache);
  }

  // The watch's handlers return when their change has been checked: the watch counts a revision
  // as delivered (what apply and delete wait for) only then.
  #onSnapshot(kvs: readonly KeyValue[], revision: number): Promise<void> {
    this.#kvs.clear();
    for (const kv of kvs) this.#kvs.set(kv.key, kv.value);
    const first = !this.#loaded;
    this.#loaded = true;
    return this.#revalidate(`etcd list at revision ${revision}`, first);
  }

  #onEvents(events: readonly WatchEvent[], revision: number): Promise<void> {
    for (const e of events) {
      if (e.type === 'DELETE') this.#kvs.delete(e.kv.key);
      else this.#kvs.set(e.kv.key, e.kv.value);
    }
    const keys = [...new Set(events.map((e) => `${e.type === 'DELETE' ? '-' : ''}${e.kv.key.slice(this.#root.length)}`))];
    return this.#revalidate(`etcd write at revision ${revision} (${keys.join(', ')})`, false);
  }

  /**
   * Checks the watched set again, after the check that is running (changes that arrive meanwhile
   * are checked together: one check per burst, not per event); resolves once a check that saw
   * this change is done.
   */
  #revalidate(origin: string, first: boolean): Promise<void> {
    if (this.#queued === undefined) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      this.#queued = { origins: [], first: false, done, resolve };
    }
    const q = this.#queued;
    q.origins.push(origin);
    q.first ||= first;
    this.#checking ??= this.#drain();
    return q.done;
  }

  async #drain(): Promise<void> {
    for (let q = this.#queued; q !== undefined; q = this.#queued) {
      this.#queued = undefined;
      // The check reads a copy: the watch goes on changing the mirror meanwhile.
      const set = new Map(this.#kvs);
      const origin = q.origins.length <= 3 ? q.origins.join('; ') : `${q.origins.slice(0, 3).join('; ')} and ${q.origins.length - 3} more`;
      try {
        const checked = await this.#check(set, this.#watchCache);
        this.#watchCache.prune(set);
        this.#checked(origin, q.first, checked);
      } catch (err) {
        this.#logger?.warn(`etcd config: checking ${origin} failed: ${err instanceof Error ? err.message : String(err)}; still serving version ${this.#state.version}`);
      }
      q.resolve();
    }
    this.#checking = undefined;
  }

  /** Takes in the outcome of a check of the watched set. */
  #checked(origin: string, first: boolean, checked: CheckedSet): void {
    const fresh = [...checked.skipped.values()].filter((v) => !this.#skipped.has(v.key) || this.#skipped.get(v.key)!.reasons.join('\n') !== v.reasons.join('\n'));
    this.#skipped = checked.skipped;
    if (fresh.length > 0) {
      const reasons = fresh.flatMap((v) => v.reasons.map((r) => `${v.key}: ${r}`));
      if (!first) this.#rejections.unshift({ at: new Date().toISOString(), origin, reasons });
      this.#rejections.length = Math.min(this.#rejections.length, MAX_REJECTIONS);
      this.#logger?.warn(`etcd config: skipping ${fresh.length} invalid stored value(s) from ${origin}; serving the others (repair with meshlet apply/delete):\n  ${reasons.join('\n  ')}`);
    }
    if (!checked.ok) {
      const reasons = checked.issues.ofLevel('error').map(String);
      if (first) this.#firstError = new ConfigError(checked.issues.all);
      this.#rejections.unshift({ at: new Date().toISOString(), origin, reasons });
      this.#rejections.length = Math.min(this.#rejections.length, MAX_REJECTIONS);
      this.#logger?.warn(`etcd config: refused ${origin}; still serving version ${this.#state.version}:\n  ${reasons.join('\n  ')}`);
      return;
    }
    if (checked.state.version === this.#state.version && !first) return;
    reportFindings(this.#logger, `etcd config version ${checked.state.version}`, this.#state.findings, checked.state.findings);
    this.#state = checked.state;
    if (first) return;
    this.#logger?.info?.(`etcd config: version ${checked.state.version} from ${origin}`);
    for (const l of this.#listeners) {
      try {
        l(checked.state);
      } catch (err) {
        this.#logger?.warn(`etcd config: a change listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}
