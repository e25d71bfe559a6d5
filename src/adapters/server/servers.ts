/**
 * The server side of one mesh, as the Mesh exposes it: the guard (normalization and the current
 * admission phases), the framework adapters built on it, the servers the mesh created (for a
 * graceful drain on close), and the phases rebuilt from each config.
 *
 * @module
 */
import { clearInterval, setInterval } from 'node:timers';
import cluster from 'node:cluster';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { PeerIdentity } from '../../core/context.ts';
import type { AnyResource } from '../../config/resource.ts';
import { type Clock, type Timer, unixMsOf } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { InboundGuard } from '../../inbound/guard.ts';
import type { PathNormalization } from '../../core/path-normalization.ts';
import { InboundPipeline } from '../../inbound/pipeline.ts';
import { InboundPolicies, type InboundPolicyOptions } from '../../inbound/policies.ts';
import type { InboundPoolCounters } from '../../inbound/connection-pool.ts';
import type { RateLimitStats } from '../../inbound/rate-limit-phase.ts';
import { type InboundTlsCounts, InboundTlsStats } from '../../inbound/tls-stats.ts';
import type { CredentialHolder } from '../../security/identity/credentials.ts';
import type { EffectivePeerAuthentication } from '../../security/peer-authentication.ts';
import { type FastifyPlugin, type FastifyServerOptions, fastifyOptions, fastifyPlugin } from './fastify.ts';
import { InboundTls } from './inbound-tls.ts';
import { MeshHttpServer } from './mesh-server.ts';
import { expressMiddleware } from './express.ts';
import { wrapListener } from './node.ts';
import { protectServer, unguardedListenersHint } from './protect.ts';
import { acceptedByAnyMesh, peerChecked, peerOfSocket, rememberPeer } from './peer.ts';

/** A connection let in without a verified peer (plaintext under PERMISSIVE): one answer for all. */
const NO_PEER = Object.freeze({ peer: undefined });

/** Options of {@link MeshServers}. */
export interface MeshServersOptions {
  readonly normalization: PathNormalization;
  readonly clock: Clock;
  /** Who the mesh is and the mesh-wide settings its admission phases are built with. */
  readonly policies: InboundPolicyOptions;
  /** How long close() lets requests in flight finish. */
  readonly closeTimeoutMs: number;
  /** The workload's certificate, key and trust bundle (mTLS on the servers the mesh creates). */
  readonly credentials: CredentialHolder;
  /** The workload's health-probe paths (served outside the inbound policies, see MeshOptions.probePaths). */
  readonly probePaths?: readonly string[] | undefined;
}

/** The mesh's server side. */
export class MeshServers {
  readonly #o: MeshServersOptions;
  /** Builds the phases of each config; keeps what outlives one (key sets, verified tokens, buckets). */
  readonly #policies: InboundPolicies;
  readonly #guard: InboundGuard;
  /** PeerAuthentication and the TLS credentials of the servers the mesh creates. */
  readonly #mtls: InboundTls;
  readonly #stats: InboundTlsStats;
  readonly #servers = new Set<Server>();
  readonly #getGuard = (): InboundGuard => this.#guard;
  /** Says once per app-owned server when it has listeners (WebSockets, …) the middleware cannot guard. */
  readonly #hint: (req: IncomingMessage) => void;

  constructor(o: MeshServersOptions, resources: readonly AnyResource[]) {
    this.#o = o;
    const p = o.policies;
    this.#hint = unguardedListenersHint(p.warn, this.#getGuard);
    this.#policies = new InboundPolicies(p);
    this.#stats = new InboundTlsStats(p.workload, undefined, unixMsOf(o.clock));
    this.#guard = new InboundGuard(this.#pipeline(resources), o.normalization, this.#stats);
    this.#mtls = new InboundTls(
      { credentials: o.credentials, workload: p.workload, rootNamespace: p.rootNamespace, trustDomain: p.trustDomain, trustDomainAliases: p.trustDomainAliases, warn: p.warn, debug: p.debug },
      resources,
    );
    this.#guard.sockets = { admit: (socket) => this.#admit(socket) };
    if (o.probePaths !== undefined && o.probePaths.length > 0) this.#guard.probes = new Set(o.probePaths);
    this.#guard.observer = { workload: p.workload, clock: o.clock };
  }

  /**
   * PeerAuthentication on a connection a mesh server did not accept: its peer (a TLS client
   * certificate checked as the mesh's servers check one: the trust bundle the app's server was
   * given, one SPIFFE ID of this trust domain, not a CA), or — under STRICT without one — a
   * refusal, said once per port with the fix.
   */
  #admit(socket: Socket): { readonly peer: PeerIdentity | undefined } | { readonly refused: string } {
    const tls = (socket as TLSSocket).encrypted === true;
    let peer: PeerIdentity | undefined;
    if (tls) {
      if (peerChecked(socket, this.#guard)) peer = peerOfSocket(socket, this.#guard);
      else {
        const v = this.#mtls.verifyPeer(socket as TLSSocket);
        peer = v.ok ? v.peer : undefined;
        rememberPeer(socket, peer, this.#guard);
      }
    }
    const port = socket.localPort ?? 0;
    if (peer === undefined && this.#mtls.modeFor(port) === 'STRICT') {
      const other = acceptedByAnyMesh(socket);
      this.#mtls.warnOnce(
        other
          ? `meshlet: PeerAuthentication STRICT of workload ${this.#o.policies.workload.namespace}/${this.#o.policies.workload.workloadName ?? this.#o.policies.workload.service} applies to port ${port}, served by another mesh's server (its mesh.createServer or fastifyOptions()), which verified the callers by that mesh's PeerAuthentication and trust domain: requests without an identity this mesh verifies are refused. Serve this workload's routes on a server of its own mesh to accept mTLS for it`
          : `meshlet: PeerAuthentication STRICT applies to port ${port}, served by a server the mesh did not make (app.listen(), http.createServer(mesh.handler(…))): its requests without a verified mesh identity are refused. Serve it with mesh.createServer(app) (Fastify: Fastify({ ...mesh.fastifyOptions() })) to accept mTLS`,
      );
      return { refused: tls ? `STRICT: the TLS connection to port ${port} proves no mesh identity` : `STRICT: a plaintext request on port ${port}, on a server ${other ? "of another mesh's" : 'the mesh did not make'}` };
    }
    return peer === undefined ? NO_PEER : { peer };
  }

  #pipeline(resources: readonly AnyResource[]): InboundPipeline {
    return new InboundPipeline(this.#policies.compile(resources));
  }

  /**
   * Rebuilds the admission phases from a new config; requests already admitted are not judged
   * again. If they cannot be built, the phases in use keep enforcing (never none).
   */
  install(resources: readonly AnyResource[]): void {
    let next: InboundPipeline;
    try {
      next = this.#pipeline(resources);
    } catch (err) {
      this.#o.policies.warn(`meshlet: the inbound policies of the new config could not be built; the last good ones keep enforcing: ${String(err)}`);
      return;
    }
    this.#guard.install(next);
    this.#mtls.install(resources);
  }

  /**
   * Warns about registered ports no server of this mesh listens on or is starting to listen on (`served`: the ports the mesh's
   * gRPC listeners are bound to): the registration says the
   * workload accepts mTLS (`security.istio.io/tlsMode: istio`), so other meshes will call them
   * over mTLS, which an app's own `http.createServer` or `app.listen()` cannot answer.
   */
  warnUnserved(ports: Readonly<Record<string, number>>, served: Iterable<number> = []): void {
    // A node:cluster primary registering for its workers (one registration per pod, which a worker's
    // restart does not remove): their servers listen in the workers, out of this mesh's sight.
    if (cluster.isPrimary && Object.keys(cluster.workers ?? {}).length > 0) return;
    const listening = new Set<number>(served);
    for (const s of this.#servers) {
      const a = s.address();
      if (a !== null && typeof a === 'object') listening.add(a.port);
      else if (s instanceof MeshHttpServer && s.requestedPort !== undefined) listening.add(s.requestedPort); // listen() not bound yet
    }
    const plain = Object.entries(ports).filter(([, port]) => typeof port === 'number' && !listening.has(port));
    if (plain.length === 0) return;
    const one = plain.length === 1;
    this.#o.policies.warn(
      `meshlet: mesh.register: port${one ? '' : 's'} ${plain.map(([name, port]) => `${name}=${port}`).join(', ')} ${one ? 'is' : 'are'} not served by a server from mesh.createServer (or Fastify's mesh.fastifyOptions(), or mesh.grpc.bind for gRPC) yet; the registration says the workload accepts mTLS (security.istio.io/tlsMode: istio), so meshes will call it over mTLS — serve it with mesh.createServer(app) before registering, or register with labels { 'security.istio.io/tlsMode': 'disabled' } for a plaintext server`,
    );
  }

  get guard(): InboundGuard {
    return this.#guard;
  }

  /** @internal PeerAuthentication and the workload's TLS credentials, for the gRPC server side. */
  get tls(): InboundTls {
    return this.#mtls;
  }

  /** The PeerAuthentication in force for this workload. */
  get peerAuthentication(): EffectivePeerAuthentication {
    return this.#mtls.peerAuthentication;
  }

  /** Inbound requests so far, plaintext and mTLS, and from which identities ("ready for STRICT?"). */
  /** The inbound connection pools' counters. */
  get poolCounters(): InboundPoolCounters[] {
    return this.#policies.poolCounters();
  }

  /** The inbound local rate limit filters' counters by `stat_prefix` (the admin endpoint's `/stats`). */
  get rateLimitStats(): ReadonlyMap<string, Readonly<RateLimitStats>> {
    return this.#policies.rateLimitStats;
  }

  get tlsCounts(): InboundTlsCounts {
    return this.#stats.counts();
  }

  express(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return expressMiddleware(this.#getGuard, this.#hint);
  }

  fastify(): FastifyPlugin {
    return fastifyPlugin(this.#getGuard, this.#hint, this.#o.policies.warn);
  }

  fastifyOptions(): FastifyServerOptions {
    return fastifyOptions(
      () => this.#guard.normalization,
      // The mesh's server without its own judgement: the plugin judges (through Fastify's reply and hooks).
      (handler) => this.#track(new MeshHttpServer(handler, this.#mtls, this.#guard)),
    );
  }

  handler(listener: RequestListener): RequestListener {
    return wrapListener(this.#getGuard, listener, this.#hint) as RequestListener;
  }

  /**
   * A node:http server that applies PeerAuthentication to each connection (plaintext and mTLS on
   * one port) and whose requests the mesh judges before `listener`; drained by close().
   */
  createServer(listener: RequestListener): Server {
    if (typeof listener !== 'function') throw new InvalidArgumentError('mesh.createServer(listener): a request listener is required (an Express app, a (req, res) function, …)');
    // Judged by the server itself, before any 'request' listener (the app's, or one a library put in its place).
    return this.#track(new MeshHttpServer(listener, this.#mtls, this.#guard, true));
  }

  /** Judges every request an app-owned server hands any listener (upgrades, 100-continue, libraries' 'request' listeners) first. */
  protect<S>(server: S): S {
    return protectServer(server, this.#getGuard);
  }

  #track(server: Server): Server {
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
    return server;
  }

  /**
   * Starts draining the servers the mesh created while they still accept (see
   * {@link MeshHttpServer.startDrain}): `mesh.close()` calls it before it deregisters and waits
   * `drainMs`, so callers move their connections away while they learn the instance is gone.
   */
  startDrain(): void {
    for (const s of this.#servers) if (s instanceof MeshHttpServer) s.startDrain();
  }

  /**
   * Stops accepting on the servers the mesh created, lets requests in flight finish for
   * `closeTimeoutMs`, then closes what is left.
   */
  async close(): Promise<void> {
    this.startDrain();
    await this.#drain();
    this.#mtls.close();
    await this.#policies.close();
  }

  async #drain(): Promise<void> {
    const servers = [...this.#servers];
    if (servers.length === 0) return;
    const closed = Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (!s.listening) return resolve();
            // A keep-alive connection goes idle when its request in flight is answered: close it then.
            const idle = setInterval(() => s.closeIdleConnections(), 25);
            idle.unref();
            s.close(() => {
              clearInterval(idle);
              resolve();
            });
            s.closeIdleConnections();
          }),
      ),
    );
    let timer: Timer | undefined;
    // On the mesh clock, keeping the process alive: the caller awaits close().
    const timedOut = await Promise.race([closed.then(() => false), new Promise<boolean>((r) => (timer = this.#o.clock.setTimer(() => r(true), this.#o.closeTimeoutMs, true)))]);
    timer?.clear();
    if (timedOut) {
      for (const s of servers) s.closeAllConnections();
      await closed;
    }
  }
}
