/**
 * What each watch stream was sent and ACKed or NACKed, and the status document built from it
 * (`GET /status`, printed by `meshlet status`). Disconnected workloads stay listed for a
 * while, bounded in count and age.
 *
 * @module
 */
import type { AckRequest, Rejection, StatusDocument, WorkloadReport, WorkloadStatus } from '../control-plane/protocol.ts';
import type { ConfigIssue } from '../config/issues.ts';
import type { SourceHealth } from './store.ts';

/** Options of {@link StatusBoard}. */
export interface StatusBoardOptions {
  /** Most disconnected workloads kept. @defaultValue 100 */
  readonly maxDisconnected?: number;
  /** How long a disconnected workload stays listed. @defaultValue 10 minutes */
  readonly keepDisconnectedMs?: number;
  /** Current time in epoch ms. @defaultValue Date.now */
  readonly now?: () => number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type Entry = Omit<Mutable<WorkloadStatus>, 'sent' | 'acked'> & { sent: Mutable<WorkloadStatus['sent']>; acked: Mutable<WorkloadStatus['acked']> };

/** `N/M workloads at config version X`: N of the M connected workloads ACKed version X. */
export function summaryLine(workloads: readonly WorkloadStatus[], configVersion: string): string {
  const connected = workloads.filter((w) => w.disconnectedAt === undefined);
  const current = connected.filter((w) => w.acked.config?.version === configVersion);
  return `${current.length}/${connected.length} workloads at config version ${configVersion}`;
}

/** The live table of watch streams. */
export class StatusBoard {
  readonly #connected = new Map<string, Entry>();
  readonly #disconnected: Entry[] = [];
  readonly #max: number;
  readonly #keepMs: number;
  readonly #now: () => number;

  constructor(options: StatusBoardOptions = {}) {
    this.#max = options.maxDisconnected ?? 100;
    this.#keepMs = options.keepDisconnectedMs ?? 600_000;
    this.#now = options.now ?? Date.now;
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  /** Records a new stream. */
  connect(w: { connection: string; service: string; namespace: string; labels: Readonly<Record<string, string>>; peer: string }): void {
    this.#connected.set(w.connection, { ...w, connectedAt: this.#iso(), sent: {}, acked: {} });
  }

  /** Records that a version was written to a stream. */
  sent(connection: string, kind: 'config' | 'endpoints', version: string): void {
    const e = this.#connected.get(connection);
    if (e !== undefined) e.sent[kind] = version;
  }

  /**
   * Records versions a stream resumed with: its `Last-Event-ID` named them, they are the ones
   * served, so none is written again. The client sends there only the versions it has applied
   * (its last good state), so they count as sent and ACKed — without this a workload that
   * reconnected (a control-plane restart, a failover between replicas) stayed STALE.
   */
  resumed(connection: string, kind: 'config' | 'endpoints', version: string): void {
    const e = this.#connected.get(connection);
    if (e === undefined) return;
    e.sent[kind] = version;
    e.acked[kind] = { version, at: this.#iso() };
  }

  /** Whether a stream is connected. */
  has(connection: string): boolean {
    return this.#connected.has(connection);
  }

  /** The service and namespace of a connected stream. */
  owner(connection: string): { service: string; namespace: string } | undefined {
    const e = this.#connected.get(connection);
    return e === undefined ? undefined : { service: e.service, namespace: e.namespace };
  }

  /** Records an ACK or NACK; false when the connection is unknown. */
  ack(a: AckRequest): boolean {
    const e = this.#connected.get(a.connection);
    if (e === undefined) return false;
    const at = this.#iso();
    if (a.status === 'ACK') {
      e.acked[a.kind] = { version: a.version, at };
      if (e.nacked?.kind === a.kind) e.nacked = undefined;
    } else {
      e.nacked = { kind: a.kind, version: a.version, at, reasons: [...(a.reasons ?? [])] };
    }
    return true;
  }

  /** Records a workload's report (certificate expiry, inbound TLS counts); false when the connection is unknown. */
  report(r: WorkloadReport): boolean {
    const e = this.#connected.get(r.connection);
    if (e === undefined) return false;
    if (r.identity !== undefined) e.identity = { spiffeId: r.identity.spiffeId, notAfter: r.identity.notAfter, source: r.identity.source };
    if (r.inboundTls !== undefined) {
      const peers: Record<string, number> = Object.create(null) as Record<string, number>;
      for (const [k, v] of Object.entries(r.inboundTls.peers)) peers[k] = v;
      const last = r.inboundTls.lastPlaintextAt;
      e.inboundTls = { plaintext: r.inboundTls.plaintext, mtls: r.inboundTls.mtls, peers, ...(last === undefined ? {} : { lastPlaintextAt: last }) };
    }
    e.reportedAt = this.#iso();
    return true;
  }

  /** Moves a stream to the disconnected list. */
  disconnect(connection: string): void {
    const e = this.#connected.get(connection);
    if (e === undefined) return;
    this.#connected.delete(connection);
    e.disconnectedAt = this.#iso();
    this.#disconnected.unshift(e);
    this.#prune();
  }

  #prune(): void {
    const cutoff = this.#now() - this.#keepMs;
    while (this.#disconnected.length > this.#max) this.#disconnected.pop();
    while (this.#disconnected.length > 0 && Date.parse(this.#disconnected.at(-1)!.disconnectedAt!) < cutoff) this.#disconnected.pop();
  }

  /** Connected streams first (oldest first), then recently disconnected ones (newest first). */
  workloads(): WorkloadStatus[] {
    this.#prune();
    const copy = (e: Entry): WorkloadStatus => {
      const { nacked, disconnectedAt, identity, inboundTls, reportedAt, ...rest } = e;
      return {
        ...rest,
        sent: { ...e.sent },
        acked: { ...e.acked },
        ...(disconnectedAt === undefined ? {} : { disconnectedAt }),
        ...(nacked === undefined ? {} : { nacked }),
        ...(identity === undefined ? {} : { identity: { ...identity } }),
        ...(inboundTls === undefined ? {} : { inboundTls: { ...inboundTls, peers: { ...inboundTls.peers } } }),
        ...(reportedAt === undefined ? {} : { reportedAt }),
      };
    };
    return [...[...this.#connected.values()].map(copy), ...this.#disconnected.map(copy)];
  }

  /** The status document. */
  document(parts: {
    server: string;
    startedAt: string;
    configVersion: string;
    endpointsVersion: string;
    source: SourceHealth;
    rejections: readonly Rejection[];
    findings: readonly ConfigIssue[];
    registered: number;
    ca?: StatusDocument['ca'];
    meshConfig?: StatusDocument['meshConfig'];
  }): StatusDocument {
    const workloads = this.workloads();
    const { kind, location, healthy, error, skipped } = parts.source;
    return {
      server: parts.server,
      startedAt: parts.startedAt,
      configVersion: parts.configVersion,
      endpointsVersion: parts.endpointsVersion,
      source: { kind, location, healthy, ...(error === undefined ? {} : { error }), ...(skipped === undefined || skipped.length === 0 ? {} : { skipped }) },
      summary: summaryLine(workloads, parts.configVersion),
      workloads,
      rejections: parts.rejections,
      findings: parts.findings.map((f) => (f.resource === undefined ? { level: f.level, code: f.code, text: String(f) } : { level: f.level, code: f.code, resource: f.resource, text: String(f) })),
      registered: parts.registered,
      ...(parts.meshConfig === undefined ? {} : { meshConfig: parts.meshConfig }),
      ...(parts.ca === undefined ? {} : { ca: parts.ca }),
    };
  }
}
