/**
 * A real grpc-js Echo server (test/fixtures/grpc/echo.proto) under a mesh's server interceptors,
 * bound through the mesh (`mesh.grpc.bind`, PeerAuthentication per connection), with the mesh's
 * credentials (`bindAsync` + `mesh.grpc.serverCredentials()`), or plaintext (`bindAsync` +
 * insecure credentials). Each handler records what it saw: the metadata and the MeshContext it
 * ran in (deadline, peer, request principal).
 */
import * as grpc from '@grpc/grpc-js';
import { currentContext, type Mesh, type MeshContext } from '../../src/index.ts';
import { type Behaviours, echo, EchoClient, type EchoReply, type EchoRequest } from './grpc.ts';

/** What a handler saw. */
export interface SeenCall {
  readonly method: string;
  readonly metadata: Record<string, unknown>;
  readonly context: MeshContext;
  /** The MeshContext seen again in a later callback of the call (a message, the end of the request stream). */
  later?: MeshContext;
}

export interface MeshGrpcServer {
  readonly server: grpc.Server;
  readonly port: number;
  readonly seen: SeenCall[];
  behaviour: Behaviours;
  close(): Promise<void>;
}

/** How the server's port is bound. */
export type BindKind = 'mesh' | 'credentials' | 'insecure';

/** Starts an Echo server on 127.0.0.1:0 with `mesh.grpc.serverInterceptors()`. */
export async function startMeshGrpcServer(mesh: Mesh, bind: BindKind = 'mesh', behaviour?: Partial<Behaviours>, interceptors = true): Promise<MeshGrpcServer> {
  const server = new grpc.Server(interceptors ? { interceptors: mesh.grpc.serverInterceptors() } : {});
  const s: MeshGrpcServer = { server, port: 0, seen: [], behaviour: { ...echo('mesh-server'), ...behaviour }, close: async () => undefined };
  const record = (method: string, md: grpc.Metadata): SeenCall => {
    const c: SeenCall = { method, metadata: md.getMap(), context: currentContext() };
    s.seen.push(c);
    return c;
  };
  type UnaryCall = grpc.ServerUnaryCall<EchoRequest, EchoReply>;
  type Callback = grpc.sendUnaryData<EchoReply>;
  server.addService(EchoClient.service, {
    Unary: (call: UnaryCall, cb: Callback) => {
      record('Unary', call.metadata);
      s.behaviour.Unary(call, cb, s.seen.length);
    },
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
      record('ServerStream', call.metadata);
      s.behaviour.ServerStream(call, s.seen.length);
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: Callback) => {
      const c = record('ClientStream', call.metadata);
      call.once('data', () => (c.later = currentContext()));
      s.behaviour.ClientStream(call, cb, s.seen.length);
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      const c = record('Bidi', call.metadata);
      call.once('data', () => (c.later = currentContext()));
      s.behaviour.Bidi(call, s.seen.length);
    },
  });
  let port: number;
  if (bind === 'mesh') port = await mesh.grpc.bind(server, '127.0.0.1:0');
  else {
    const creds = bind === 'credentials' ? mesh.grpc.serverCredentials() : grpc.ServerCredentials.createInsecure();
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  }
  (s as { port: number }).port = port;
  s.close = async () => {
    server.forceShutdown();
  };
  return s;
}

/** Client options: a subchannel pool of its own, so a connection another client saw refused is not reused (or backed off). */
export const OWN_CONNECTIONS: grpc.ClientOptions = { 'grpc.use_local_subchannel_pool': 1 };

/** A plaintext Echo client straight to `port` (not through a mesh). */
export function plainClient(port: number): grpc.Client {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), OWN_CONNECTIONS);
}

/** Metadata from a record. */
export function md(values: Record<string, string | string[]>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(values)) for (const x of Array.isArray(v) ? v : [v]) m.add(k, x);
  return m;
}
