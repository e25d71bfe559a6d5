/**
 * The workloads behind `echo` in a parity scenario: each a real node:http server and a real
 * grpc-js server on 127.0.0.1 port 0 answering the Echo calls as the row says. Plain servers for
 * the client-side rows; for the server-side rows (a `server` config) each workload runs under a
 * mesh of its own — service `echo`, namespace `default`, the workload's labels — as a pod with a
 * sidecar: the node:http server is `mesh.createServer(listener)`, the grpc-js server has
 * `mesh.grpc.serverInterceptors()` and is bound with `mesh.grpc.bind` (PeerAuthentication per
 * connection), with identities from a dev CA for the mTLS rows. Each handler counts the calls
 * it received (a call the mesh denied never reaches it) and records the request principal of the
 * MeshContext it ran in.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMesh, currentContext, type ManualClock, type Mesh, seededRandom } from '../../src/index.ts';
import { EchoClient, type EchoReply, type EchoRequest, grpc, status } from '../helpers/grpc.ts';

/** What a workload answers one call with: success, a failure as each protocol says it, or nothing until the test ends. */
export type Answer = 'ok' | 'hold' | { readonly http: number; readonly grpc: grpc.status };

/** A workload behind `echo`: its name (what a reply names), labels (subsets match them), and its answer to its n-th call (1-based). */
export interface Workload {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** @defaultValue always 'ok' */
  readonly answer?: (hit: number) => Answer;
}

/** The mesh each workload runs under (server-side rows). */
export interface WorkloadMesh {
  /** The workload's Istio resources. */
  readonly config: readonly object[];
  readonly clock: ManualClock;
  readonly meterProvider: unknown;
  /** A dev CA directory (`meshlet ca init`): the workloads get identities from it, service account `echo`. */
  readonly devCa?: string;
}

/** One workload's endpoint: its ports and what its handlers saw. */
export interface Endpoint {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>> | undefined;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** Calls each protocol's handler received. */
  readonly hits: { http: number; grpc: number };
  /** The request principal (`currentContext().requestPrincipal`) of the last call each handler ran, null when none. */
  readonly principal: { http: string | null; grpc: string | null };
}

export interface Workloads {
  readonly eps: readonly Endpoint[];
  hits(protocol: 'http' | 'grpc'): Record<string, number>;
  close(): Promise<void>;
}

const listen = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });

/** Starts the workloads: each an HTTP and a gRPC server answering as the row says, under a mesh of its own when `under` is given. */
export async function startWorkloads(workloads: readonly Workload[], under?: WorkloadMesh): Promise<Workloads> {
  const held: ServerResponse[] = [];
  const eps: Endpoint[] = [];
  const meshes: Mesh[] = [];
  const httpServers: Server[] = [];
  const grpcServers: grpc.Server[] = [];
  const close = async (): Promise<void> => {
    for (const r of held) r.destroy();
    for (const s of grpcServers) s.forceShutdown();
    await Promise.all(
      httpServers.map(
        (s) =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      ),
    );
    await Promise.all(meshes.map((m) => m.close()));
  };
  try {
    for (const [i, w] of workloads.entries()) {
      const answer = w.answer ?? (() => 'ok');
      let mesh: Mesh | undefined;
      if (under !== undefined) {
        mesh = await createMesh({
          service: 'echo',
          namespace: 'default',
          labels: { app: 'echo', ...w.labels },
          clock: under.clock,
          random: seededRandom(61 + i),
          logger: { warn: () => undefined, error: () => undefined },
          telemetry: { metrics: { meterProvider: under.meterProvider as never } },
          config: [...under.config],
          ...(under.devCa === undefined ? {} : { identity: { devCa: under.devCa }, serviceAccount: 'echo' }),
        });
        meshes.push(mesh);
      }
      const hits = { http: 0, grpc: 0 };
      const principal: Endpoint['principal'] = { http: null, grpc: null };

      const listener = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
        try {
          for await (const _ of req);
        } catch {
          return; // the caller gave up mid-upload
        }
        hits.http++;
        principal.http = currentContext().requestPrincipal ?? null;
        const a = answer(hits.http);
        if (a === 'hold') {
          held.push(res);
          return;
        }
        res.setHeader('x-upstream', w.name);
        res.statusCode = a === 'ok' ? 200 : a.http;
        res.end(w.name);
      };
      const http = mesh === undefined ? createServer(listener) : mesh.createServer(listener);
      httpServers.push(http);
      const httpPort = await listen(http);

      const g = new grpc.Server(mesh === undefined ? {} : { interceptors: mesh.grpc.serverInterceptors() });
      grpcServers.push(g);
      const arrived = (): Answer => {
        hits.grpc++;
        principal.grpc = currentContext().requestPrincipal ?? null;
        return answer(hits.grpc);
      };
      const failure = (code: grpc.status) => status(code, `${w.name} says ${grpc.status[code]}`);
      g.addService(EchoClient.service, {
        Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
          const a = arrived();
          if (a === 'hold') return; // answered by the server's shutdown
          if (a === 'ok') cb(null, { text: call.request.text, server: w.name, seen: [] });
          else cb(failure(a.grpc));
        },
        ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
          const a = arrived();
          if (a === 'hold') return;
          if (a === 'ok') {
            call.write({ text: call.request.text, server: w.name, seen: [] });
            call.end();
          } else call.destroy(failure(a.grpc));
        },
      });
      const grpcPort =
        mesh === undefined
          ? await new Promise<number>((resolve, reject) => g.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))))
          : await mesh.grpc.bind(g, '127.0.0.1:0');
      eps.push({ name: w.name, labels: w.labels, httpPort, grpcPort, hits, principal });
    }
  } catch (e) {
    await close();
    throw e;
  }
  return {
    eps,
    hits(protocol): Record<string, number> {
      const h: Record<string, number> = Object.create(null);
      for (const e of eps) h[e.name] = e.hits[protocol];
      return h;
    },
    close,
  };
}
