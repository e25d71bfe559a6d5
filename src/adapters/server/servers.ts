/**
 * The server side of one mesh, as the Mesh exposes it: the guard (normalization and the current
 * admission phases), the framework adapters built on it, the servers the mesh created (for a
 * graceful drain on close), and the phases rebuilt from each config.
 *
 * @module
 */
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AnyResource } from '../../config/resource.ts';
import type { Clock, Timer } from '../../core/clock.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { InboundGuard } from '../../inbound/guard.ts';
import type { PathNormalization } from '../../inbound/path.ts';
import { InboundPipeline, type Phase } from '../../inbound/pipeline.ts';
import { type FastifyPlugin, fastifyOptions, fastifyPlugin } from './fastify.ts';
import { expressMiddleware, wrapListener } from './node.ts';

/** What a phase compiler gets: the config and who the mesh is. */
export interface InboundCompileContext {
  readonly resources: readonly AnyResource[];
  readonly workload: WorkloadIdentity;
  /** The namespace whose policies apply mesh-wide. */
  readonly rootNamespace: string;
  readonly clock: Clock;
}

/** Builds one admission phase from a config, or nothing when no policy of its kind applies. */
export type PhaseCompiler = (ctx: InboundCompileContext) => Phase | undefined;

/** Options of {@link MeshServers}. */
export interface MeshServersOptions {
  readonly normalization: PathNormalization;
  readonly rootNamespace: string;
  readonly workload: WorkloadIdentity;
  readonly clock: Clock;
  /** The phase compilers, in phase order. */
  readonly compilers: readonly PhaseCompiler[];
  /** How long close() lets requests in flight finish. */
  readonly closeTimeoutMs: number;
}

/** The mesh's server side. */
export class MeshServers {
  readonly #o: MeshServersOptions;
  readonly #guard: InboundGuard;
  readonly #servers = new Set<Server>();
  readonly #getGuard = (): InboundGuard => this.#guard;

  constructor(o: MeshServersOptions, resources: readonly AnyResource[]) {
    this.#o = o;
    this.#guard = new InboundGuard(this.#pipeline(resources), o.normalization);
  }

  #pipeline(resources: readonly AnyResource[]): InboundPipeline {
    const ctx: InboundCompileContext = { resources, workload: this.#o.workload, rootNamespace: this.#o.rootNamespace, clock: this.#o.clock };
    const phases: Phase[] = [];
    for (const c of this.#o.compilers) {
      const p = c(ctx);
      if (p !== undefined) phases.push(p);
    }
    return new InboundPipeline(phases);
  }

  /** Rebuilds the admission phases from a new config; requests already admitted are not judged again. */
  install(resources: readonly AnyResource[]): void {
    this.#guard.install(this.#pipeline(resources));
  }

  get guard(): InboundGuard {
    return this.#guard;
  }

  express(): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
    return expressMiddleware(this.#getGuard);
  }

  fastify(): FastifyPlugin {
    return fastifyPlugin(this.#getGuard);
  }

  fastifyOptions(): { rewriteUrl(req: IncomingMessage): string } {
    return fastifyOptions(() => this.#guard.normalization);
  }

  handler(listener: RequestListener): RequestListener {
    return wrapListener(this.#getGuard, listener) as RequestListener;
  }

  /** A node:http server whose requests the mesh judges before `listener`; drained by close(). */
  createServer(listener: RequestListener): Server {
    if (typeof listener !== 'function') throw new InvalidArgumentError('mesh.createServer(listener): a request listener is required (an Express app, a (req, res) function, …)');
    const server = createHttpServer(this.handler(listener));
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
    return server;
  }

  /**
   * Stops accepting on the servers the mesh created, lets requests in flight finish for
   * `closeTimeoutMs`, then closes what is left.
   */
  async close(): Promise<void> {
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
