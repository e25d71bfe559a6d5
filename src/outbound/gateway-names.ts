/**
 * East-west gateways given by host name (an AWS ELB's `status.loadBalancer.ingress[].hostname`,
 * a MeshNetworks `address`), resolved as istiod resolves them (`pilot/pkg/model/network.go`,
 * `networkGatewayNameCache`, `RESOLVE_HOSTNAME_GATEWAYS` on by default): A and AAAA (family 0),
 * each address its own gateway; an answer is kept for its TTL clamped to [30 s, 1 h]
 * (`MinGatewayTTL`, `MaxGatewayTTL`; an answer without a TTL — a custom `dns.resolve` that gives
 * none, a name only /etc/hosts knows — is kept for `dnsRefreshRate`, clamped the same way), then resolved again in the background; a name whose answer changed makes
 * the mesh compile its config again (istiod pushes). A resolution that fails keeps the previous
 * addresses and is retried after 30 s; an answer without addresses (NXDOMAIN, no records) leaves
 * the name without gateways, as in istiod, for the SOA's negative-caching time the resolver gives
 * (istiod's `minimalTTL` reads the authority section's SOA), 30 s when it gives none — clamped the same way. Names no compile uses any more are forgotten.
 *
 * One cache per mesh, on the mesh's Clock.
 *
 * @module
 */
import { isIP } from 'node:net';
import type { GatewayAddresses } from '../config/network-topology.ts';
import type { Clock, Timer } from '../core/clock.ts';
import type { Snapshot } from '../routing/compile.ts';
import { type DnsResolve, isNegativeAnswer } from './dns-target.ts';

/** istiod's `MinGatewayTTL`: the shortest time an answer is kept, and the retry delay after a failure. */
export const MIN_GATEWAY_TTL_MS = 30_000;
/** istiod's `MaxGatewayTTL` (CoreDNS's cap): the longest time an answer is kept. */
export const MAX_GATEWAY_TTL_MS = 3_600_000;
/** The longest a compile waits for a gateway name never resolved before it is installed without it. */
export const GATEWAY_NAME_WAIT_MS = 5_000;

/**
 * One gateway host name as the mesh has it (`mesh.diagnostics().gatewayNames`).
 * @category Diagnostics
 */
export interface GatewayNameView {
  readonly hostname: string;
  /** The addresses in use (sorted); null while the name has no answer yet. */
  readonly addresses: readonly string[] | null;
  /** Milliseconds until it is resolved again (null while a resolution is under way). */
  readonly refreshInMs: number | null;
  /** Why the last resolution failed (its addresses are the previous answer's), null when it did not. */
  readonly lastError: string | null;
}

interface Entry {
  /** undefined: no answer yet. */
  addresses: readonly string[] | undefined;
  timer: Timer | undefined;
  refreshAt: number | undefined;
  lastError: Error | undefined;
  /** Compiles waiting for the first answer (they compile with it: no change to announce). */
  waiters: number;
  /** Settled once the name has its first answer (or failure). */
  readonly first: Promise<void>;
  answered: () => void;
  /** What was last logged about the name (logged once per change). */
  logged: string;
}

/** Options of {@link GatewayNames}. */
export interface GatewayNamesOptions {
  readonly resolve: DnsResolve;
  /** `dnsRefreshRate`: how long an answer without a TTL is kept (clamped to [30 s, 1 h]). */
  readonly refreshMs: number;
  readonly clock: Clock;
  readonly logger: { warn(message: string): void; info?(message: string): void };
  /** How long {@link GatewayNames.settle} waits at most. @defaultValue {@link GATEWAY_NAME_WAIT_MS} */
  readonly waitMs?: number;
}

const clampTtl = (ms: number): number => Math.min(MAX_GATEWAY_TTL_MS, Math.max(MIN_GATEWAY_TTL_MS, ms));
const same = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean => a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));

/** The gateway host names of one mesh: resolved, cached for their TTL, refreshed, forgotten when unused. */
export class GatewayNames {
  readonly #o: GatewayNamesOptions;
  readonly #entries = new Map<string, Entry>();
  #closed = false;
  #generation = 0;
  /** Called when a name's addresses changed (the mesh compiles its config again). */
  onChange: (() => void) | undefined;

  constructor(o: GatewayNamesOptions) {
    this.#o = o;
  }

  /** The addresses of `hostname` (a compile's `NetworkSettings.gatewayAddresses`); undefined while it has no answer. */
  readonly lookup: GatewayAddresses = (hostname) => this.#entries.get(hostname)?.addresses;

  /**
   * The names a compile used: new ones start resolving, those not among them are forgotten
   * (istiod's `cleanupWatches`). Returns the names without an answer yet.
   */
  use(names: readonly string[]): string[] {
    if (this.#closed) return [];
    const keep = new Set(names);
    for (const [name, e] of this.#entries) {
      if (keep.has(name)) continue;
      e.timer?.clear();
      this.#entries.delete(name);
    }
    const missing: string[] = [];
    for (const name of keep) {
      let e = this.#entries.get(name);
      if (e === undefined) {
        let answered = (): void => undefined;
        const first = new Promise<void>((r) => {
          answered = r;
        });
        e = { addresses: undefined, timer: undefined, refreshAt: undefined, lastError: undefined, waiters: 0, first, answered, logged: '' };
        this.#entries.set(name, e);
        this.#resolve(name, e);
      }
      if (e.addresses === undefined) missing.push(name);
    }
    return missing;
  }

  /** Waits until each of `names` has its first answer, for at most `waitMs` (on the clock). */
  async settle(names: readonly string[]): Promise<void> {
    const entries = names.map((n) => this.#entries.get(n)).filter((e): e is Entry => e !== undefined && e.addresses === undefined);
    if (entries.length === 0) return;
    for (const e of entries) e.waiters++;
    let timer: Timer | undefined;
    const timeout = new Promise<void>((r) => {
      timer = this.#o.clock.setTimer(r, this.#o.waitMs ?? GATEWAY_NAME_WAIT_MS, true);
    });
    try {
      await Promise.race([Promise.all(entries.map((e) => e.first)), timeout]);
    } finally {
      timer?.clear();
      for (const e of entries) e.waiters--;
    }
    const late = names.filter((n) => this.#entries.get(n)?.addresses === undefined);
    if (late.length > 0) this.#o.logger.warn(`meshlet: east-west gateway host name(s) ${late.join(', ')} not resolved within ${this.#o.waitMs ?? GATEWAY_NAME_WAIT_MS} ms: the config is applied without ${late.length === 1 ? 'that gateway' : 'those gateways'} for now, and again once ${late.length === 1 ? 'it resolves' : 'they resolve'}`);
  }

  #resolve(name: string, e: Entry): void {
    e.timer = undefined;
    e.refreshAt = undefined;
    let p: Promise<{ readonly addresses: readonly string[]; readonly ttlMs?: number | undefined }>;
    try {
      p = this.#o.resolve(name, 0);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (a) => this.#answered(name, e, a.addresses, a.ttlMs),
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        if (isNegativeAnswer(error)) this.#answered(name, e, [], undefined);
        else this.#failed(name, e, error);
      },
    );
  }

  #answered(name: string, e: Entry, list: readonly string[], ttlMs: number | undefined): void {
    if (this.#closed || this.#entries.get(name) !== e) return;
    const addresses = Object.freeze([...new Set(list.filter((a) => isIP(a) !== 0))].sort());
    // No records: istiod's minimalTTL takes the TTL of the authority section's SOA (the zone's negative-caching
    // time, which the resolver gives as the answer's ttlMs), else MinGatewayTTL; clamped as any answer.
    const ttl = addresses.length === 0 ? clampTtl(ttlMs ?? 0) : clampTtl(ttlMs !== undefined && ttlMs > 0 ? ttlMs : this.#o.refreshMs);
    e.lastError = undefined;
    this.#settle(name, e, addresses, ttl, addresses.length === 0 ? `could not resolve east-west gateway host name "${name}": no addresses; it stands for no gateway (resolved again in ${ttl / 1000} s)` : '');
  }

  #failed(name: string, e: Entry, error: Error): void {
    if (this.#closed || this.#entries.get(name) !== e) return;
    e.lastError = error;
    // Gracefully keep the old addresses (istiod): a DNS outage does not take the gateway away.
    const kept = e.addresses ?? Object.freeze([]);
    const what = kept.length === 0 ? 'it stands for no gateway' : `keeping its last addresses ${kept.join(', ')}`;
    this.#settle(name, e, kept, MIN_GATEWAY_TTL_MS, `could not resolve east-west gateway host name "${name}": ${error.message}; ${what} (retried in ${MIN_GATEWAY_TTL_MS / 1000} s)`);
  }

  #settle(name: string, e: Entry, addresses: readonly string[], ttl: number, problem: string): void {
    const before = e.addresses;
    e.addresses = addresses;
    e.refreshAt = this.#o.clock.now() + ttl;
    e.timer = this.#o.clock.setTimer(() => this.#resolve(name, e), ttl);
    const state = problem === '' ? `ok ${addresses.join(',')}` : `${e.lastError === undefined ? 'empty' : 'failed'} ${addresses.join(',')}`;
    if (state !== e.logged) {
      if (problem !== '') this.#o.logger.warn(`meshlet: ${problem}`);
      else if (e.logged !== '' || before !== undefined) this.#o.logger.info?.(`meshlet: east-west gateway host name "${name}" resolves to ${addresses.join(', ')}${before === undefined || before.length === 0 ? '' : ` (was ${before.join(', ')})`}`);
      e.logged = state;
    }
    e.answered();
    // A first answer a compile waits for is compiled with; any other change is announced.
    if (!same(before, addresses) && !(before === undefined && e.waiters > 0)) {
      this.#generation++;
      this.onChange?.();
    }
  }

  /**
   * Moves on whenever what a compile reads besides its config changed — a name's addresses, or
   * (told by {@link GatewayNames.settingsChanged}) the mesh settings — each change followed by a
   * compile of its own: a compile that saw it move while it ran is stale, and a newer one follows.
   */
  get generation(): number {
    return this.#generation;
  }

  /** The mesh settings compiles read changed (a pushed MeshConfig): a compile running now read the old ones. */
  settingsChanged(): void {
    this.#generation++;
  }

  /** Every name with its addresses, for diagnostics. */
  view(): GatewayNameView[] {
    const now = this.#o.clock.now();
    return [...this.#entries]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([hostname, e]) => ({ hostname, addresses: e.addresses === undefined ? null : [...e.addresses], refreshInMs: e.refreshAt === undefined ? null : Math.max(0, Math.round(e.refreshAt - now)), lastError: e.lastError?.message ?? null }));
  }

  /** Whether {@link GatewayNames.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops every refresh (at once; a promise so it can be a step of a close sequence). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const e of this.#entries.values()) e.timer?.clear();
    this.#entries.clear();
  }
}

/**
 * Compiles with `names`: when the snapshot uses gateway host names that have no answer yet, waits
 * for them (at most the cache's wait) and compiles again, so a snapshot is not installed where a
 * remote network has no gateway only because its name was not resolved yet (with no gateway at
 * all, multi-network would be off and remote endpoints called directly).
 */
export async function compileWithGatewayNames(compile: () => Promise<Snapshot>, names: GatewayNames | undefined): Promise<Snapshot> {
  const first = await compile();
  if (names === undefined) return first;
  const missing = names.use(first.gatewayHostnames);
  if (missing.length === 0) return first;
  await names.settle(missing);
  const second = await compile();
  names.use(second.gatewayHostnames);
  return second;
}

/**
 * Runs `compile` (config that must be installed: a new config or endpoints) again while what it
 * reads besides the config changed meanwhile ({@link GatewayNames.generation}; at most `tries`
 * times): the compile that change started reads the state in use, which this one is about to
 * replace, so that one will not be installed — this one must carry the change.
 */
export async function compileCurrent(compile: () => Promise<Snapshot>, names: GatewayNames | undefined, tries = 3): Promise<Snapshot> {
  for (let i = 1; ; i++) {
    const generation = names?.generation;
    const snapshot = await compile();
    if (names === undefined || names.generation === generation || i >= tries) return snapshot;
  }
}
