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
import { InboundGuard } from '../../inbound/guard.ts';
import type { PathNormalization } from '../../inbound/path.ts';
import { InboundPipeline } from '../../inbound/pipeline.ts';
import { InboundPolicies, type InboundPolicyOptions } from '../../inbound/policies.ts';
import { type FastifyPlugin, fastifyOptions, fastifyPlugin } from './fastify.ts';
import { expressMiddleware, wrapListener } from './node.ts';

/** Options of {@link MeshServers}. */
export interface MeshServersOptions {
  readonly normalization: PathNormalization;
  readonly clock: Clock;
  /** Who the mesh is and the mesh-wide settings its admission phases are built with. */
  readonly policies: InboundPolicyOptions;
  /** How long close() lets requests in flight finish. */
  readonly closeTimeoutMs: number;
}

/** The mesh's server side. */
export class MeshServers {
  readonly #o: MeshServersOptions;
  /** Builds the phases of each config; keeps what outlives one (key sets, verified tokens, buckets). */
  readonly #policies: InboundPolicies;
  readonly #guard: InboundGuard;
  readonly #servers = new Set<Server>();
  readonly #getGuard = (): InboundGuard => this.#guard;

  constructor(o: MeshServersOptions, resources: readonly AnyResource[]) {
    this.#o = o;
    this.#policies = new InboundPolicies(o.policies);
    this.#guard = new InboundGuard(this.#pipeline(resources), o.normalization);
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
    await this.#drain();
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
