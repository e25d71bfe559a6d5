/**
 * Registering this workload in the control plane's registry (WorkloadGroup-style
 * auto-registration): `POST /v1/workloads` with a lease, renewed every third of the lease,
 * registered again when the control plane forgot it (404 on renewal: it expired during an
 * outage or the control plane restarted), retried through outages, deregistered on close.
 *
 * @module
 */
import cluster from 'node:cluster';
import type { Clock, Timer } from '../core/clock.ts';
import { InvalidArgumentError, MeshletError } from '../core/errors.ts';
import { checkOptionNames, optionNames } from '../core/option-names.ts';
import { type ControlPlaneHttp, controlPlaneError, HttpStatusError, type CallRequest } from './http.ts';
import { clampWireMs, DEFAULT_LEASE_MS, MAX_LEASE_MS, MIN_LEASE_MS, type RegisterRequest, type RegisterResponse, WORKLOADS_PATH } from './protocol.ts';
import { TLS_MODE_ISTIO, TLS_MODE_LABEL } from '../outbound/tls-decision.ts';
import { RegistrationHealth } from './registration-health.ts';


/** Istio's `service.istio.io/workload-name` label (a WorkloadEntry's workload name). */
const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';
/**
 * Options of `mesh.register()`.
 * @category Mesh
 */
export interface RegisterOptions {
  /**
   * Port name → port this instance listens on, e.g. `{ http: 19081 }`; added to (and overriding)
   * the ports of the WorkloadGroup template. Required unless `group` names a group whose template has ports.
   * @defaultValue createMesh's `ports`
   */
  readonly ports?: Readonly<Record<string, number>> | undefined;
  /**
   * The WorkloadGroup (in this workload's namespace) whose template the registered WorkloadEntry
   * is made from, as istiod's auto-registration does; the control plane refuses (404) a group that
   * does not exist. When the group has a readiness `probe`, the mesh runs it and the instance is an
   * endpoint only while it passes (docs/control-plane-client.md, Readiness probes).
   * @defaultValue the group named like the service, if there is one; else no template
   */
  readonly group?: string | undefined;
  /** The address other meshes connect to. @defaultValue the address the control plane sees the request come from */
  readonly address?: string | undefined;
  /** Load-balancing weight. @defaultValue the server's (1) */
  readonly weight?: number | undefined;
  /** Lease asked for, bounded to 1 s..300 s; renewed every third of it. @defaultValue 30000 (the server's default) */
  readonly leaseMs?: number | undefined;
  /** Labels of the instance. @defaultValue the mesh's `labels` */
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** `region/zone/subzone`. @defaultValue the mesh's `locality` */
  readonly locality?: string | undefined;
  /** Network name, for multi-network set-ups. @defaultValue the mesh's `network` */
  readonly network?: string | undefined;
  /**
   * Run the WorkloadGroup's probe when it is an `exec` probe (a command run in this process's
   * directory and environment). The command comes from the control plane's config, so it runs
   * only when the workload allows it: otherwise `register()` deregisters and rejects.
   * httpGet and tcpSocket probes always run. @defaultValue false
   */
  readonly allowExecProbe?: boolean | undefined;
  /**
   * Hosts the WorkloadGroup's httpGet or tcpSocket probe may reach besides this instance's
   * registered address and loopback (the probe comes from the control plane's config, and its
   * errors are published in the WorkloadEntry's status). @defaultValue none
   */
  readonly probeHosts?: readonly string[] | undefined;
}

/** The names of {@link RegisterOptions} (mesh.register refuses others), checked against the type. @internal */
export const REGISTER_OPTION_NAMES = optionNames<RegisterOptions>()(['ports', 'group', 'address', 'weight', 'leaseMs', 'labels', 'locality', 'network', 'allowExecProbe', 'probeHosts']);

/**
 * One registered instance.
 * @category Mesh
 */
export interface Registration {
  /** The WorkloadEntry's name (may change if the control plane forgot it and it registered again). */
  readonly name: string;
  /** The WorkloadEntry's namespace (the token's). */
  readonly namespace: string;
  /** The lease granted. */
  readonly leaseMs: number;
  /** Stops renewing and deregisters (best effort; the lease ends it otherwise). */
  close(): Promise<void>;
}

/** What a {@link Registrar} needs. */
export interface RegistrarOptions {
  readonly http: ControlPlaneHttp;
  readonly urls: readonly string[];
  readonly clock: Clock;
  /** Without a token the server needs `service` and `namespace` in the body (`--insecure`). */
  readonly hasToken: boolean;
  readonly service: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The service account of the workload (sent without a token; the token's is used otherwise). */
  readonly serviceAccount?: string;
  /** The workload has an identity: registrations add `security.istio.io/tlsMode: istio` (unless the labels set it), Istio's sign that it accepts mTLS. */
  readonly acceptsMtls?: boolean;
  /** Registrations add `service.istio.io/workload-name: <this>` (unless the labels set it): Istio's workload name of a WorkloadEntry, which clients' metrics read as `destination_workload`. */
  readonly workloadName?: string | undefined;
  readonly locality: string;
  /** The mesh's network: registrations are on it unless they name another. @defaultValue '' */
  readonly network?: string;
  /** How long `register()` keeps retrying an unreachable control plane. */
  readonly timeoutMs: number;
  readonly logger: { warn(message: string): void };
}

function transient(e: unknown): boolean {
  // A per-workload limit (429 LIMIT_EXCEEDED) holds until something is released: not retried.
  if (e instanceof HttpStatusError && e.serverCode === 'LIMIT_EXCEEDED') return false;
  return !(e instanceof HttpStatusError) || e.status >= 500 || e.status === 408 || e.status === 429;
}

/** The lease a response grants, clamped to {@link MIN_LEASE_MS}..{@link MAX_LEASE_MS} (it times the renewals). */
function grantedLease(res: RegisterResponse, asked: number | undefined): number {
  return clampWireMs(res?.leaseMs, MIN_LEASE_MS, MAX_LEASE_MS) ?? asked ?? DEFAULT_LEASE_MS;
}

/** Whether this process (a node:cluster worker) was told that its workers should not register. */
let warnedClusterWorker = false;

/** Registers workloads and keeps their leases. */
export class Registrar {
  readonly #o: RegistrarOptions;
  readonly #live = new Set<LiveRegistration>();
  #preferred = 0;
  #closed = false;

  constructor(o: RegistrarOptions) {
    this.#o = o;
  }

  /** Registrations not closed yet. */
  get active(): number {
    return this.#live.size;
  }

  /** Validates the options and registers; resolves once the control plane accepted it. */
  async register(o: RegisterOptions): Promise<Registration> {
    if (this.#closed) throw new InvalidArgumentError('mesh.register: the mesh is closed');
    const body = this.#body(o);
    const started = this.#o.clock.now();
    let attempt = 0;
    for (;;) {
      try {
        const res = await this.call<RegisterResponse>({ method: 'POST', path: WORKLOADS_PATH, body });
        const reg = new LiveRegistration(this, body, res, o.allowExecProbe === true, o.probeHosts);
        if (res.probe?.exec !== undefined && o.allowExecProbe !== true) {
          await reg.close();
          throw new InvalidArgumentError(
            `mesh.register: WorkloadGroup ${res.namespace}/${String(res.workload.metadata.annotations?.['istio.io/autoRegistrationGroup'])} has an exec probe (${JSON.stringify(res.probe.exec.command)}); meshlet runs a command from the control plane's config only when the workload allows it: register with { allowExecProbe: true }, or give the group an httpGet or tcpSocket probe`,
          );
        }
        if (this.#closed) {
          await reg.close();
          throw new InvalidArgumentError('mesh.register: the mesh was closed while registering');
        }
        this.#live.add(reg);
        if (cluster.isWorker && !warnedClusterWorker) {
          warnedClusterWorker = true;
          this.#o.logger.warn(`meshlet: mesh.register in a node:cluster worker: the workers of one pod register one entry (${res.namespace}/${reg.name}), which the first worker to close its mesh deregisters while the others still serve; register once, from the primary (docs/deploying.md, "node:cluster, PM2")`);
        }
        return reg;
      } catch (e) {
        if (e instanceof MeshletError && e.code !== 'MESHLET_ERR_CONTROL_PLANE') throw e;
        if (this.#closed) throw new InvalidArgumentError('mesh.register: the mesh was closed while registering', { cause: e });
        const cause = (e as { cause?: unknown }).cause ?? e;
        const waited = this.#o.clock.now() - started;
        if (!transient(cause) || waited >= this.#o.timeoutMs) {
          throw new MeshletError('MESHLET_ERR_CONTROL_PLANE', `mesh.register: ${(e as Error).message}`, { cause: e });
        }
        await this.sleep(Math.min(100 * 2 ** attempt++, 2000, this.#o.timeoutMs - waited));
      }
    }
  }

  #body(o: RegisterOptions): RegisterRequest {
    if (o === null || typeof o !== 'object') throw new InvalidArgumentError('mesh.register: options are required, e.g. { ports: { http: 8080 } }');
    checkOptionNames('mesh.register', o, REGISTER_OPTION_NAMES);
    if (o.group !== undefined && (typeof o.group !== 'string' || o.group === '')) throw new InvalidArgumentError(`mesh.register: \`group\` must be a WorkloadGroup name, got ${JSON.stringify(o.group)}`);
    if (o.ports !== undefined && (o.ports === null || typeof o.ports !== 'object' || Array.isArray(o.ports))) {
      throw new InvalidArgumentError('mesh.register: `ports` must map port names to numbers, e.g. { http: 8080 }');
    }
    const hasPorts = o.ports !== undefined && Object.keys(o.ports).length > 0;
    if (!hasPorts && o.group === undefined) {
      throw new InvalidArgumentError('mesh.register: `ports` is required (unless `group` names a WorkloadGroup whose template has ports), e.g. { ports: { http: 8080 } }');
    }
    for (const [name, port] of Object.entries(o.ports ?? {})) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`mesh.register: port "${name}" must be an integer 1..65535, got ${String(port)}`);
    }
    if (o.leaseMs !== undefined && !(Number.isInteger(o.leaseMs) && o.leaseMs >= MIN_LEASE_MS && o.leaseMs <= MAX_LEASE_MS)) {
      throw new InvalidArgumentError(`mesh.register: \`leaseMs\` must be an integer ${MIN_LEASE_MS}..${MAX_LEASE_MS}, got ${String(o.leaseMs)}`);
    }
    if (o.allowExecProbe !== undefined && typeof o.allowExecProbe !== 'boolean') throw new InvalidArgumentError(`mesh.register: \`allowExecProbe\` must be true or false, got ${String(o.allowExecProbe)}`);
    if (o.probeHosts !== undefined && !(Array.isArray(o.probeHosts) && o.probeHosts.every((h) => typeof h === 'string' && h !== ''))) {
      throw new InvalidArgumentError(`mesh.register: \`probeHosts\` must be an array of host names or addresses, got ${JSON.stringify(o.probeHosts)}`);
    }
    if (o.weight !== undefined && !(Number.isInteger(o.weight) && o.weight >= 0)) throw new InvalidArgumentError(`mesh.register: \`weight\` must be a non-negative integer, got ${String(o.weight)}`);
    const locality = o.locality ?? this.#o.locality;
    const network = o.network ?? this.#o.network ?? '';
    const labels: Record<string, string> = { ...(o.labels ?? this.#o.labels) };
    // Clients' auto-mTLS reads this label (Istio's sidecar injector sets it on every pod with a sidecar).
    if (this.#o.acceptsMtls === true && !Object.hasOwn(labels, TLS_MODE_LABEL)) labels[TLS_MODE_LABEL] = TLS_MODE_ISTIO;
    const wl = this.#o.workloadName;
    if (wl !== undefined && wl !== '' && !Object.hasOwn(labels, WORKLOAD_NAME_LABEL)) labels[WORKLOAD_NAME_LABEL] = wl;
    return {
      ...(hasPorts ? { ports: { ...o.ports } } : {}),
      ...(o.group === undefined ? {} : { group: o.group }),
      labels,
      ...(o.address === undefined ? {} : { address: o.address }),
      ...(locality === '' ? {} : { locality }),
      ...(o.weight === undefined ? {} : { weight: o.weight }),
      ...(network === '' ? {} : { network }),
      ...(o.leaseMs === undefined ? {} : { leaseMs: o.leaseMs }),
      // This client runs the group's probe (if any) and reports its health.
      healthChecks: true,
      ...(this.#o.hasToken ? {} : { service: this.#o.service, namespace: this.#o.namespace, ...(this.#o.serviceAccount === undefined ? {} : { serviceAccount: this.#o.serviceAccount }) }),
    };
  }

  /**
   * One call, trying each URL from the one that last worked; a transient failure (socket
   * error, 5xx, open breaker) moves on to the next. Rejects with a MESHLET_ERR_CONTROL_PLANE
   * error whose cause is the last failure.
   */
  async call<T>(req: CallRequest): Promise<T> {
    const urls = this.#o.urls;
    let last: unknown;
    for (let i = 0; i < urls.length; i++) {
      const index = (this.#preferred + i) % urls.length;
      const url = urls[index] as string;
      try {
        const r = await this.#o.http.call<T>(url, req);
        this.#preferred = index;
        return r;
      } catch (e) {
        last = controlPlaneError(url, e);
        if (!transient(e)) throw last;
      }
    }
    throw last;
  }

  /** @internal */
  sleep(ms: number): Promise<void> {
    // The caller awaits mesh.register(): keep the process alive through the backoff.
    return new Promise((r) => this.#o.clock.setTimer(r, ms, true));
  }

  /** @internal */
  get clock(): Clock {
    return this.#o.clock;
  }

  /** @internal */
  get logger(): { warn(message: string): void } {
    return this.#o.logger;
  }

  /** @internal */
  forget(reg: LiveRegistration): void {
    this.#live.delete(reg);
  }

  /** Deregisters every registration; resolves with how many there were. */
  async closeAll(): Promise<number> {
    this.#closed = true;
    const all = [...this.#live];
    await Promise.all(all.map((r) => r.close()));
    return all.length;
  }
}

class LiveRegistration implements Registration {
  readonly #r: Registrar;
  readonly #body: RegisterRequest;
  #name: string;
  #namespace: string;
  #leaseMs: number;
  #timer: Timer | undefined;
  #inflight: Promise<void> = Promise.resolve();
  #closed: Promise<void> | undefined;
  #failing = false;
  readonly #allowExec: boolean;
  readonly #probeHosts: readonly string[] | undefined;
  #health: RegistrationHealth | undefined;
  #probeKey: string | undefined;

  constructor(r: Registrar, body: RegisterRequest, res: RegisterResponse, allowExec: boolean, probeHosts: readonly string[] | undefined) {
    this.#r = r;
    this.#body = body;
    this.#allowExec = allowExec;
    this.#probeHosts = probeHosts === undefined ? undefined : [...probeHosts];
    this.#name = res.name;
    this.#namespace = res.namespace;
    this.#leaseMs = grantedLease(res, body.leaseMs);
    this.#probe(res, false);
    this.#schedule();
  }

  /** Runs the probe the answer names (a health-checked entry) at the registered address, or stops one it no longer names. */
  #probe(res: RegisterResponse, again: boolean): void {
    const probe = res.probe;
    const address = (res.workload.spec as { address?: unknown } | undefined)?.address;
    const host = typeof address === 'string' && address !== '' ? address : (this.#body.address ?? '127.0.0.1');
    // A registration made anew at another address (the control plane saw another peer address) probes that one.
    const key = probe === undefined ? undefined : JSON.stringify([RegistrationHealth.key(probe), host]);
    if (key === this.#probeKey) return;
    void this.#health?.stop();
    this.#health = undefined;
    this.#probeKey = key;
    if (probe === undefined || this.#closed !== undefined) return;
    if (probe.exec !== undefined && !this.#allowExec) {
      // register() refuses this at once; a group that gained an exec probe since is only warned about.
      if (again) this.#r.logger.warn(`meshlet: registration ${this.#namespace}/${this.#name}: its WorkloadGroup now has an exec probe, which runs only with mesh.register({ allowExecProbe: true }); it stays out of service`);
      return;
    }
    this.#health = new RegistrationHealth({
      clock: this.#r.clock,
      probe,
      host,
      probeHosts: this.#probeHosts,
      logger: this.#r.logger,
      describe: () => `${this.#namespace}/${this.#name}`,
      send: (e) => this.#r.call({ method: 'PUT', path: `${this.#path()}/health`, body: e.message === undefined ? { healthy: e.healthy } : { healthy: e.healthy, message: e.message } }),
    });
    this.#health.start();
  }

  #path(): string {
    return `${WORKLOADS_PATH}/${encodeURIComponent(this.#namespace)}/${encodeURIComponent(this.#name)}`;
  }

  get name(): string {
    return this.#name;
  }
  get namespace(): string {
    return this.#namespace;
  }
  get leaseMs(): number {
    return this.#leaseMs;
  }

  #schedule(): void {
    this.#timer = this.#r.clock.setTimer(() => {
      this.#inflight = this.#renew().finally(() => {
        if (this.#closed === undefined) this.#schedule();
      });
    }, Math.max(100, Math.floor(this.#leaseMs / 3)));
  }

  async #renew(): Promise<void> {
    try {
      let res: RegisterResponse;
      let registered = false;
      try {
        res = await this.#r.call<RegisterResponse>({ method: 'PUT', path: `${this.#path()}/lease` });
      } catch (e) {
        const cause = (e as { cause?: unknown }).cause;
        if (!(cause instanceof HttpStatusError && cause.status === 404) || this.#closed !== undefined) throw e;
        // Forgotten (lease ended during an outage, or the control plane restarted): register again.
        res = await this.#r.call<RegisterResponse>({ method: 'POST', path: WORKLOADS_PATH, body: this.#body });
        registered = true;
      }
      this.#name = res.name;
      this.#namespace = res.namespace;
      this.#leaseMs = grantedLease(res, this.#body.leaseMs);
      if (registered) this.#probe(res, true);
      this.#health?.resync(registered);
      if (this.#failing) this.#r.logger.warn(`meshlet: registration ${this.#namespace}/${this.#name} ${registered ? 'registered again (the control plane had forgotten it)' : 'renewed again'}`);
      this.#failing = false;
    } catch (e) {
      if (!this.#failing) this.#r.logger.warn(`meshlet: renewing registration ${this.#namespace}/${this.#name} failed, retrying: ${(e as Error).message}`);
      this.#failing = true;
    }
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#timer?.clear();
      await this.#health?.stop();
      await this.#inflight;
      await this.#health?.stop();
      this.#r.forget(this);
      try {
        await this.#r.call({ method: 'DELETE', path: this.#path() });
      } catch (e) {
        const cause = (e as { cause?: unknown }).cause;
        if (!(cause instanceof HttpStatusError && cause.status === 404)) {
          this.#r.logger.warn(`meshlet: deregistering ${this.#namespace}/${this.#name} failed (its lease will end it): ${(e as Error).message}`);
        }
      }
    })();
    return this.#closed;
  }
}
