/**
 * Real grpc-js servers on 127.0.0.1 for gRPC data-plane tests, serving the Echo service of
 * test/fixtures/grpc/echo.proto: each counts its calls, records the metadata it received, and
 * answers with a behaviour the test sets per method (by default: echo, naming the server).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { after } from 'node:test';
import type { Mesh } from '../../src/index.ts';

const PROTO = fileURLToPath(new URL('../fixtures/grpc/echo.proto', import.meta.url));

const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
const loaded = grpc.loadPackageDefinition(definition) as unknown as { meshlet: { test: { Echo: grpc.ServiceClientConstructor } } };

/** The Echo client class (as `loadPackageDefinition` gives it). */
export const EchoClient = loaded.meshlet.test.Echo;

export interface EchoRequest {
  text: string;
  count: number;
}
export interface EchoReply {
  text: string;
  server: string;
  seen: string[];
}

/** The client as the tests use it (grpc-js's generic client methods). */
export type Echo = grpc.Client & {
  Unary(req: Partial<EchoRequest>, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): grpc.ClientUnaryCall;
  ServerStream(req: Partial<EchoRequest>, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void): grpc.ClientWritableStream<Partial<EchoRequest>>;
  Bidi(md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<Partial<EchoRequest>, EchoReply>;
};

type UnaryCall = grpc.ServerUnaryCall<EchoRequest, EchoReply>;
type Callback = grpc.sendUnaryData<EchoReply>;

/** What a server does with each method (set per test; `hit` is the server's call count so far, 1-based). */
export interface Behaviours {
  Unary(call: UnaryCall, cb: Callback, hit: number): void;
  ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>, hit: number): void;
  ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: Callback, hit: number): void;
  Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>, hit: number): void;
}

export interface GrpcUpstream {
  readonly name: string;
  readonly port: number;
  hits: number;
  /** Metadata of each call as received (the values as the server read them). */
  readonly seen: { method: string; metadata: Record<string, unknown> }[];
  behaviour: Behaviours;
  close(): Promise<void>;
}

/** An error status with metadata. */
export function status(code: grpc.status, details: string, md: Record<string, string> = {}): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return Object.assign(new Error(details), { code, details, metadata }) as grpc.ServiceError;
}

/** The default behaviours: echo, naming the server. */
export function echo(name: string): Behaviours {
  return {
    Unary: (call, cb) => cb(null, { text: call.request.text, server: name, seen: [] }),
    ServerStream: (call) => {
      for (let i = 0; i < call.request.count; i++) call.write({ text: `${call.request.text}-${i}`, server: name, seen: [] });
      call.end();
    },
    ClientStream: (call, cb) => {
      const texts: string[] = [];
      call.on('data', (m: EchoRequest) => texts.push(m.text));
      call.on('end', () => cb(null, { text: texts.join(','), server: name, seen: texts }));
    },
    Bidi: (call) => {
      call.on('data', (m: EchoRequest) => call.write({ text: m.text, server: name, seen: [] }));
      call.on('end', () => call.end());
    },
  };
}

/** Starts an Echo server on 127.0.0.1, port 0 (plaintext unless `credentials` say otherwise). */
export async function startGrpcUpstream(name: string, behaviour?: Partial<Behaviours>, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<GrpcUpstream> {
  const server = new grpc.Server();
  const u: GrpcUpstream = { name, port: 0, hits: 0, seen: [], behaviour: { ...echo(name), ...behaviour }, close: async () => undefined };
  const record = (method: string, md: grpc.Metadata): number => {
    u.hits++;
    u.seen.push({ method, metadata: md.getMap() });
    return u.hits;
  };
  server.addService(EchoClient.service, {
    Unary: (call: UnaryCall, cb: Callback) => u.behaviour.Unary(call, cb, record('Unary', call.metadata)),
    ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => u.behaviour.ServerStream(call, record('ServerStream', call.metadata)),
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: Callback) => u.behaviour.ClientStream(call, cb, record('ClientStream', call.metadata)),
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => u.behaviour.Bidi(call, record('Bidi', call.metadata)),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  (u as { port: number }).port = port;
  u.close = () => new Promise<void>((r) => {
    server.forceShutdown();
    r();
  });
  return u;
}

/** A unary call as a promise: the reply, or the error status. */
export function unary(client: Echo, req: Partial<EchoRequest>, opts: { metadata?: grpc.Metadata; deadline?: grpc.Deadline } = {}): Promise<{ reply?: EchoReply; error?: grpc.ServiceError; metadata?: grpc.Metadata; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    const out: { reply?: EchoReply; error?: grpc.ServiceError; metadata?: grpc.Metadata; trailers?: grpc.Metadata } = {};
    const call = client.Unary(req, opts.metadata ?? new grpc.Metadata(), opts.deadline === undefined ? {} : { deadline: opts.deadline }, (err, res) => {
      if (err !== null) out.error = err;
      else out.reply = res;
    });
    call.on('metadata', (md) => (out.metadata = md));
    call.on('status', (s) => {
      out.trailers = s.metadata;
      // The callback runs before 'status'; give it a turn.
      setImmediate(() => resolve(out));
    });
  });
}

/** Collects a server stream: its messages and how it ended. */
export function collect<T>(stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>): Promise<{ messages: T[]; status: grpc.StatusObject; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    let error: grpc.ServiceError | undefined;
    stream.on('data', (m: T) => messages.push(m));
    stream.on('error', (e: grpc.ServiceError) => (error = e));
    stream.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ messages, status, error })));
  });
}

/** The ServiceEntry of a gRPC service `host` on `port` (protocol GRPC) with one endpoint per upstream port. */
export function grpcServiceEntry(name: string, host: string, port: number, endpoints: { port: number; labels?: Record<string, string> }[]): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: 'default' },
    spec: {
      hosts: [host],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: port, name: 'grpc', protocol: 'GRPC' }],
      endpoints: endpoints.map((e) => ({ address: '127.0.0.1', ports: { grpc: e.port }, labels: e.labels })),
    },
  };
}

export { grpc };

/**
 * The upstreams, meshes and clients a test suite starts, closed when it ends (clients, then
 * meshes, then upstreams): call at the top of a `describe`, push what the tests make.
 */
export function closedAfter(): { ups: GrpcUpstream[]; meshes: Mesh[]; clients: Echo[] } {
  const made = { ups: [] as GrpcUpstream[], meshes: [] as Mesh[], clients: [] as Echo[] };
  after(async () => {
    for (const c of made.clients) c.close();
    await Promise.all(made.meshes.map((m) => m.close()));
    await Promise.all(made.ups.map((u) => u.close()));
  });
  return made;
}

/** An EchoReply { text } as protobuf, encoded by hand for raw HTTP/2 servers: `n` bytes of `c` (n < 2^21). */
export function echoReplyBytes(n: number, c: string | number = 0x61): Buffer {
  const len: number[] = [];
  for (let v = n; ; v >>>= 7) {
    if (v < 0x80) {
      len.push(v);
      break;
    }
    len.push((v & 0x7f) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x0a, ...len]), Buffer.alloc(n, c)]);
}
