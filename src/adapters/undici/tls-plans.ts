/**
 * Turns a TLS decision (`outbound/tls-decision.ts`) into a connection plan: the secure context
 * (the DestinationRule's files, read once per config, or the mesh's credentials of the current
 * generation), the SNI, ALPN and what to verify. Plans are shared by the endpoints of a cluster
 * that decided alike; a plan that cannot be made is a reason, and calls fail with it.
 *
 * {@link TlsEnvironment} is the mesh-wide part: the config's resources and files, the
 * credentials, MeshConfig's trust domain and `enableAutoMtls`, and an epoch that moves whenever
 * one of them changes (a pool built in an older epoch re-decides before its next call).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { type Clock, systemClock } from '../../core/clock.ts';
import { type AnyResource, ofKind } from '../../config/resource.ts';
import { ClusterTlsPlanner, type ClientTlsContext, type ClientTlsDecision } from '../../outbound/tls-decision.ts';
import type { Cluster } from '../../routing/route-table.ts';
import type { CredentialHolder, WorkloadCredentials } from '../../security/identity/credentials.ts';
import { type TlsFileField, TlsFiles } from '../../security/tls-files.ts';
import { ISTIO_ALPN_H2, ISTIO_ALPN_HTTP11, type TlsPlan, type TlsVerify } from './tls-connector.ts';

/** MeshConfig settings of client TLS. */
export interface ClientTlsOptions {
  /** @defaultValue 'istio-system' */
  readonly rootNamespace?: string;
  /** @defaultValue 'cluster.local' */
  readonly trustDomain?: string;
  /** @defaultValue [] */
  readonly trustDomainAliases?: readonly string[];
  /** @defaultValue true */
  readonly enableAutoMtls?: boolean;
}

/** The mesh-wide inputs of client TLS, and the epoch that says when they changed. */
export class TlsEnvironment {
  /** Moves on every change of config, files or credentials. */
  epoch = 0;
  #resources: readonly AnyResource[] = [];
  #files: TlsFiles = TlsFiles.EMPTY;
  #rules: readonly AnyResource[] = [];
  readonly #credentials: CredentialHolder;
  readonly #clock: Clock;
  readonly #o: Required<ClientTlsOptions>;
  #meshContext: { readonly generation: number; readonly context: SecureContext } | undefined;
  #ctx: ClientTlsContext | undefined;
  readonly #unsubscribe: () => void;

  /** `clock`: the mesh's (the wait for an expired certificate's renewal runs on it, as the connect timeout that bounds it). */
  constructor(credentials: CredentialHolder, o: ClientTlsOptions = {}, clock: Clock = systemClock) {
    this.#credentials = credentials;
    this.#clock = clock;
    this.#o = {
      rootNamespace: o.rootNamespace ?? 'istio-system',
      trustDomain: o.trustDomain ?? 'cluster.local',
      trustDomainAliases: o.trustDomainAliases ?? [],
      enableAutoMtls: o.enableAutoMtls ?? true,
    };
    // New credentials: new connections present them at once (pools re-plan; old ones drain).
    const off = [credentials.subscribe(() => this.#changed()), credentials.onPendingChange(() => this.#changed())];
    this.#unsubscribe = () => {
      for (const f of off) f();
    };
  }

  #changed(): void {
    this.epoch++;
    this.#ctx = undefined;
  }

  /** A config is in use: its resources, and its TLS files read now. Returns the findings about the files. */
  install(resources: readonly AnyResource[]): TlsFiles {
    if (resources !== this.#resources) {
      this.#resources = resources;
      // Files are read again when a DestinationRule changed, not on every endpoint update.
      const drs = ofKind(resources, 'DestinationRule');
      if (drs.length !== this.#rules.length || drs.some((r, i) => r !== this.#rules[i])) this.#files = new TlsFiles(resources);
      this.#rules = drs;
      this.#changed();
    }
    return this.#files;
  }

  /** The files of the config in use. */
  get files(): TlsFiles {
    return this.#files;
  }

  /** What decisions read (rebuilt after each change). */
  get context(): ClientTlsContext {
    this.#ctx ??= Object.freeze({ resources: this.#resources, ...this.#o, hasIdentity: this.#credentials.current !== undefined, identityPending: this.#credentials.pending });
    return this.#ctx;
  }

  /** The mesh's own credentials now. */
  get credentials(): WorkloadCredentials | undefined {
    return this.#credentials.current;
  }

  /** A secure context with the mesh's certificate and trust bundle (one per credentials generation). */
  meshContext(c: WorkloadCredentials): SecureContext {
    const m = this.#meshContext;
    if (m !== undefined && m.generation === c.generation) return m.context;
    const context = createSecureContext({ cert: c.certChain, key: c.privateKey, ca: c.trustBundle, minVersion: 'TLSv1.2' });
    this.#meshContext = { generation: c.generation, context };
    return context;
  }

  /** For a connection about to present `c`: the secure context of its renewal (CredentialHolder.renewalFor), undefined when `c` may be presented. */
  renewedContext(c: WorkloadCredentials, waitMs: number): Promise<SecureContext | undefined> | undefined {
    return this.#credentials.renewalFor(c, waitMs, this.#clock)?.then((n) => (n === undefined ? undefined : this.meshContext(n)));
  }

  /** Stops following the credentials. */
  close(): void {
    this.#unsubscribe();
  }
}

/** A plan, or why a cluster's calls fail. */
export type PlanResult = { readonly plan: TlsPlan | undefined; readonly failure: string | undefined };

const PLAINTEXT: PlanResult = Object.freeze({ plan: undefined, failure: undefined });

/** The TLS plans of one cluster in one epoch: a decision per endpoint, a plan per distinct decision. */
export class ClusterTlsPlans {
  readonly epoch: number;
  readonly #planner: ClusterTlsPlanner;
  readonly #cluster: Cluster;
  readonly #env: TlsEnvironment;
  readonly #h2: boolean;
  readonly #plans = new Map<string, PlanResult>();

  constructor(cluster: Cluster, env: TlsEnvironment, h2: boolean) {
    this.epoch = env.epoch;
    this.#cluster = cluster;
    this.#env = env;
    this.#h2 = h2;
    this.#planner = new ClusterTlsPlanner(cluster, env.context);
  }

  /** The decision for an endpoint (or the cluster's when its endpoints are not known: passthrough). */
  decide(endpoint: Cluster['endpoints'][number] | undefined): ClientTlsDecision {
    return this.#planner.decide(endpoint);
  }

  /** The plan for an endpoint: undefined plan = plaintext. */
  planFor(endpoint: Cluster['endpoints'][number] | undefined): PlanResult {
    const d = this.decide(endpoint);
    // Endpoints that decided alike share a plan (SNI and identities are the cluster's).
    const k = `${d.mode}|${d.source}|${d.failure ?? ''}`;
    let p = this.#plans.get(k);
    if (p === undefined) {
      p = this.#build(d);
      this.#plans.set(k, p);
    }
    return p;
  }

  /** `DestinationRule ns/name` (the rules that gave the cluster its policy). */
  get #rule(): string {
    return this.#cluster.destinationRule?.rules.map((r) => r.ref).join(', ') ?? 'DestinationRule';
  }

  #file(field: TlsFileField, path: string, d: ClientTlsDecision): { pem?: string; failure?: string } {
    const f = this.#env.files.get(field, path);
    if (f.ok) return { pem: f.pem };
    return { failure: `${this.#rule} tls.${field}: ${f.error} (${d.why})` };
  }

  #build(d: ClientTlsDecision): PlanResult {
    if (d.failure !== undefined) return { plan: undefined, failure: d.failure };
    if (d.mode === 'DISABLE') return PLAINTEXT;
    const c = this.#cluster;
    const h2 = this.#h2;
    const t = d.declared;
    const skip = t?.insecureSkipVerify === true;
    if (d.mode === 'ISTIO_MUTUAL') {
      const creds = this.#env.credentials;
      if (creds === undefined) return { plan: undefined, failure: `ISTIO_MUTUAL needs this workload's certificate, and there is none (${d.why})` };
      let context: SecureContext;
      try {
        context = this.#env.meshContext(creds);
      } catch (e) {
        return { plan: undefined, failure: `this workload's certificate, key or trust bundle cannot be used: ${(e as Error).message}` };
      }
      const ctx = this.#env.context;
      // Never skipped: in-mesh mTLS always checks the chain against the mesh's roots and the
      // server's SPIFFE ID (istiod applies insecureSkipVerify to ISTIO_MUTUAL only for dynamic
      // forward proxy clusters, which meshlet does not have).
      const verify: TlsVerify = { kind: 'identity', identities: d.identities, trustDomains: [ctx.trustDomain, ...ctx.trustDomainAliases] };
      const key = `ISTIO_MUTUAL|${creds.generation}|${d.sni}|${d.identities.join(',')}|${h2}`;
      const env = this.#env;
      const renewed = (waitMs: number) => env.renewedContext(creds, waitMs);
      return { plan: Object.freeze({ mode: 'ISTIO_MUTUAL', servername: d.sni, context, verify, alpn: h2 ? ISTIO_ALPN_H2 : ISTIO_ALPN_HTTP11, h2, trust: "the mesh's trust bundle", key, renewed }), failure: undefined };
    }
    // SIMPLE / MUTUAL origination with the rule's files.
    const opts: { ca?: string; cert?: string; key?: string; crl?: string; minVersion: 'TLSv1.2' } = { minVersion: 'TLSv1.2' };
    const files: [TlsFileField, string | undefined, 'ca' | 'crl' | 'cert' | 'key'][] = [
      ['caCertificates', t?.caCertificates, 'ca'],
      ['caCrl', t?.caCrl, 'crl'],
    ];
    if (d.mode === 'MUTUAL') files.push(['clientCertificate', t?.clientCertificate, 'cert'], ['privateKey', t?.privateKey, 'key']);
    for (const [field, path, opt] of files) {
      if (path === undefined || path === '') continue;
      if (skip && (field === 'caCertificates' || field === 'caCrl')) continue;
      const f = this.#file(field, path, d);
      if (f.failure !== undefined) return { plan: undefined, failure: f.failure };
      opts[opt] = f.pem;
    }
    if (d.mode === 'MUTUAL' && (opts.cert === undefined || opts.key === undefined)) {
      return { plan: undefined, failure: `MUTUAL needs clientCertificate and privateKey (${d.why})` };
    }
    if (d.mode === 'MUTUAL') {
      // A certificate and a key that do not belong together: say which files, as the config finding does.
      const pair = this.#env.files.pair(t?.clientCertificate as string, t?.privateKey as string);
      if (!pair.ok) return { plan: undefined, failure: `${this.#rule} tls: ${pair.error} (${d.why})` };
    }
    let context: SecureContext;
    try {
      context = createSecureContext(opts);
    } catch (e) {
      return { plan: undefined, failure: `${this.#rule} tls: its files cannot be used (${(e as Error).message})` };
    }
    // No `sni` in the rule: Istio sets Envoy's auto_sni (cluster_tls.go setAutoSniAndAutoSanValidation),
    // so the SNI is the upstream request's Host (after a VirtualService's rewrite.authority, port
    // dropped; none for an IP address) — undefined here, taken per connection from the request.
    const sni = t?.sni !== undefined && t.sni !== '' ? t.sni : undefined;
    const sans = t?.subjectAltNames ?? [];
    // Istio: the rule's SANs; a ServiceEntry's own subjectAltNames when the rule has none.
    const seSans = c.service.resource.kind === 'ServiceEntry' ? (c.service.resource.spec.subjectAltNames ?? []) : [];
    const wanted = sans.length > 0 ? sans : seSans;
    const explicitSni = t?.sni !== undefined && t.sni !== '';
    // auto_san_validation (no sni, no SANs): the certificate must name the SNI the connection sent.
    const verify: TlsVerify = skip ? { kind: 'none' } : wanted.length > 0 ? { kind: 'sans', sans: wanted } : explicitSni ? { kind: 'chain' } : { kind: 'hostname', hostname: undefined };
    const trust = t?.caCertificates !== undefined && t.caCertificates !== '' ? `caCertificates ${t.caCertificates}` : "Node's default CA certificates (no caCertificates)";
    // The files' contents are part of the key: a rule re-read with new files makes new connections.
    const contents = createHash('sha256').update(JSON.stringify([opts.ca, opts.crl, opts.cert, opts.key])).digest('base64');
    const key = `${d.mode}|${JSON.stringify(t)}|${contents}|${sni}|${h2}`;
    return { plan: Object.freeze({ mode: d.mode, servername: sni, context, verify, alpn: h2 ? ['h2'] : ['http/1.1'], h2, trust, key }), failure: undefined };
  }
}
