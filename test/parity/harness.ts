
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { initDevCa } from '../../src/security/pki/dev-ca.ts';
import { createMesh, ManualClock, type Mesh, seededRandom, withDeadline } from '../../src/index.ts';
import { type Echo, EchoClient, grpc, unary } from '../helpers/grpc.ts';
import { type Point, sdk } from '../helpers/metric-reader.ts';
import { ISSUER, jwks, type TokenKind, token } from './tokens.ts';
import { type Endpoint, startWorkloads, type Workload } from './workloads.ts';
import { until } from '../helpers/until.ts';

export { ISSUER };

/** The service every scenario calls, and its two ports (one Service serving HTTP and gRPC, as a pod would). */
export const HOST = 'echo.default.svc.cluster.local';
export const HTTP_PORT = 8080;
export const GRPC_PORT = 9090;
/** The gRPC service of test/fixtures/grpc/echo.proto: its methods' paths are `/meshlet.test.Echo/<method>`. */
export const SERVICE = 'meshlet.test.Echo';

export type { Answer, Workload } from './workloads.ts';

/** The call a scenario makes. */
export interface Call {
  /** The Echo method (its path is `/meshlet.test.Echo/<method>`). @defaultValue 'Unary' */
  readonly method?: 'Unary' | 'ServerStream';
  /** HTTP headers / gRPC metadata. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The caller's deadline, ms: a gRPC call's `deadline`; for HTTP, `withDeadline()` (the mesh's MeshContext deadline). */
  readonly deadlineMs?: number;
  /** A JWT sent as `authorization: Bearer …` (./tokens.ts): issued by {@link ISSUER} to `alice`, expired, or signed with a key not in the JWKS. */
  readonly token?: TokenKind;
}

/** How a scenario drives its calls. */
export type Drive =
  /**
   * `count` calls one after the other (the expectation is about the last). While a call waits on
   * a mesh timer (a retry's backoff), the mesh clock moves `stepMs` forward.
   * @defaultValue count 1, stepMs 250 (Envoy's longest default backoff: 10 × 25 ms)
   */
  | {
      readonly kind: 'calls';
      readonly count: number;
      readonly stepMs?: number;
      /** The i-th call (0-based) is `calls[i]` when given, else the scenario's `call`. */
      readonly calls?: readonly Call[];
      /** After call number `after` (1-based), the workloads' mesh clock moves `advanceMs` forward (a rate limit's refill). */
      readonly tick?: { readonly after: number; readonly advanceMs: number };
    }
  /**
   * One call; once it is parked — at a workload (`'upstream'`) or on a mesh timer (`'timer'`) —
   * the mesh clock moves `advanceMs` forward.
   */
  | { readonly kind: 'clock'; readonly advanceMs: number; readonly parked: 'upstream' | 'timer' }
  /** `held` calls first, which the workloads hold; once `arrived` of them reached one, the call. */
  | { readonly kind: 'overflow'; readonly held: number; readonly arrived: number };

/** What the caller saw of the (last) call. */
export interface Seen {
  /** HTTP status, or the gRPC status code. */
  readonly status: number;
  /** x-meshlet-response-flags (response headers, or gRPC response metadata / trailers), '-' when none. */
  readonly flags: string;
  /** The workload that answered (x-upstream / the reply's `server`), or null when none did. */
  readonly upstream: string | null;
  /** The HTTP response body; the gRPC status details ('' for OK). */
  readonly details: string;
}

/** One protocol's run of a scenario. */
export interface Run {
  readonly seen: Seen;
  /** Calls each workload received (attempts, retries included). */
  readonly hits: Readonly<Record<string, number>>;
  /** Which workload answered each successful call, counted. */
  readonly served: Readonly<Record<string, number>>;
  /** istio_requests_total{reporter="source"}: `request_protocol response_code grpc_response_status response_flags` → count. */
  readonly requests: Readonly<Record<string, number>>;
  /** istio_requests_total{reporter="destination"} of the workloads' meshes (server-side rows; empty otherwise), keyed as `requests`. */
  readonly inbound: Readonly<Record<string, number>>;
  /** The request principal the handler of the last call that reached a workload ran with (null: none, or no call reached one). */
  readonly principal: string | null;
}

export type Protocol = 'http' | 'grpc';

/** The key of an istio_requests_total point in {@link Run.requests}. */
export function requestKey(labels: { request_protocol: string; response_code: string; grpc_response_status: string; response_flags: string }): string {
  return `${labels.request_protocol} ${labels.response_code} ${labels.grpc_response_status === '' ? '""' : labels.grpc_response_status} ${labels.response_flags}`;
}

/** The row's YAML as resource objects (a syntax error names the row). */
export function resources(name: string, yaml: string): object[] {
  const docs = parseAllDocuments(yaml);
  const out: object[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(`scenario "${name}": YAML: ${d.errors[0]?.message}`);
    const o = d.toJS() as object | null;
    if (o !== null) out.push(o);
  }
  return out;
}

/**
 * A dev CA for the mTLS rows, made once per process in a temporary directory
 * ({@link removeDevCa} removes it).
 */
let devCaDir: Promise<string> | undefined;
function devCa(): Promise<string> {
  devCaDir ??= (async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'meshlet-parity-')), 'ca');
    await initDevCa(dir);
    return dir;
  })();
  return devCaDir;
}
/** Removes the dev CA of the mTLS rows, if one was made (call from `after()`). */
export async function removeDevCa(): Promise<void> {
  if (devCaDir === undefined) return;
  rmSync(dirname(await devCaDir), { recursive: true, force: true });
  devCaDir = undefined;
}

/** The ServiceEntry of `echo`; with `mtls`, its endpoints are sidecar'd workloads (tlsMode istio) of service account `echo`. */
function serviceEntry(eps: readonly Endpoint[], mtls = false): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'echo', namespace: 'default' },
    spec: {
      hosts: [HOST],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [
        { number: HTTP_PORT, name: 'http', protocol: 'HTTP' },
        { number: GRPC_PORT, name: 'grpc', protocol: 'GRPC' },
      ],
      endpoints: eps.map((e) => ({
        address: '127.0.0.1',
        ports: { http: e.httpPort, grpc: e.grpcPort },
        labels: mtls ? { ...e.labels, 'security.istio.io/tlsMode': 'istio' } : e.labels,
        ...(mtls ? { serviceAccount: 'echo' } : {}),
      })),
    },
  };
}

/** Polls `cond` on event-loop turns and short sleeps, up to 2 s of real time (a bound, not a measurement). */
/**
 * Waits for `p`; meanwhile, whenever a mesh timer is pending (a retry backoff), moves the mesh
 * clock `stepMs` forward, so a call that waits on the mesh clock goes on.
 */
async function pumped<T>(clock: ManualClock, p: Promise<T>, stepMs: number): Promise<T> {
  let done = false;
  const out = p.finally(() => {
    done = true;
  });
  while (!done) {
    await Promise.race([out, new Promise((r) => setTimeout(r, 1))]);
    if (!done && clock.pending > 0) clock.advance(stepMs);
  }
  return out;
}

type Caller = (call: Call) => Promise<Seen>;

function httpCaller(mesh: Mesh): Caller {
  return async (c) => {
    const send = async (): Promise<Seen> => {
      const res = await mesh.fetch(`http://echo:${HTTP_PORT}/${SERVICE}/${c.method ?? 'Unary'}`, { method: 'POST', headers: { 'content-type': 'application/json', ...c.headers }, body: '{"text":"t"}' });
      const body = await res.text();
      return { status: res.status, flags: res.headers.get('x-meshlet-response-flags') ?? '-', upstream: res.headers.get('x-upstream'), details: body };
    };
    return c.deadlineMs === undefined ? send() : withDeadline(c.deadlineMs, send);
  };
}

function grpcCaller(client: Echo): Caller {
  return async (c) => {
    const metadata = new grpc.Metadata();
    for (const [k, v] of Object.entries(c.headers ?? {})) metadata.set(k, v);
    const deadline = c.deadlineMs === undefined ? undefined : Date.now() + c.deadlineMs;
    const flagsOf = (...mds: (grpc.Metadata | undefined)[]): string => {
      for (const md of mds) {
        const v = md?.get('x-meshlet-response-flags')[0];
        if (v !== undefined) return String(v);
      }
      return '-';
    };
    if ((c.method ?? 'Unary') === 'Unary') {
      const r = await unary(client, { text: 't' }, { metadata, ...(deadline === undefined ? {} : { deadline }) });
      return { status: r.error?.code ?? grpc.status.OK, flags: flagsOf(r.metadata, r.trailers, r.error?.metadata), upstream: r.reply?.server ?? null, details: r.error?.details ?? '' };
    }
    const stream = client.ServerStream({ text: 't', count: 1 }, metadata, deadline === undefined ? {} : { deadline });
    let head: grpc.Metadata | undefined;
    stream.on('metadata', (md) => (head = md));
    const messages: { server: string }[] = [];
    stream.on('data', (m: { server: string }) => messages.push(m));
    stream.on('error', () => undefined);
    const s = await new Promise<grpc.StatusObject>((r) => stream.on('status', (st: grpc.StatusObject) => setImmediate(() => r(st))));
    return { status: s.code, flags: flagsOf(head, s.metadata), upstream: messages[0]?.server ?? null, details: s.code === grpc.status.OK ? '' : s.details };
  };
}

/** The points of istio_requests_total from `reporter`, counted by {@link requestKey}. */
function count(points: readonly Point[], reporter: 'source' | 'destination'): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  for (const p of points) {
    if (p.attributes['reporter'] !== reporter) continue;
    const key = requestKey(p.attributes as never);
    out[key] = (out[key] ?? 0) + p.value;
  }
  return out;
}

/** What {@link run} needs of a scenario. */
export interface Runnable {
  readonly name: string;
  readonly yaml: string;
  /** The workloads' own Istio config (server-side rows): `$JWKS` stands for the JWKS of ./tokens.ts. */
  readonly server?: string;
  /** With `server`: the caller's mesh and the workloads' have identities from one dev CA (service accounts `caller`, `echo`); the endpoints take mTLS. */
  readonly mtls?: boolean;
  readonly workloads?: readonly Workload[];
  readonly call?: Call;
  readonly drive?: Drive;
}

/** Runs `scenario` over `protocol` and tears everything down. */
export async function run(scenario: Runnable, protocol: Protocol): Promise<Run> {
  const metrics = sdk();
  const serverMetrics = sdk();
  const clock = new ManualClock(1_000_000);
  const serverClock = new ManualClock(5_000_000);
  let mesh: Mesh | undefined;
  let client: Echo | undefined;
  const pending: Promise<unknown>[] = [];
  const ca = scenario.mtls === true ? await devCa() : undefined;
  const server =
    scenario.server === undefined
      ? undefined
      : { config: resources(`${scenario.name} (server)`, scenario.server.replaceAll('$JWKS', JSON.stringify(await jwks()))), clock: serverClock, meterProvider: serverMetrics.provider, ...(ca === undefined ? {} : { devCa: ca }) };
  const workloads = await startWorkloads(scenario.workloads ?? [{ name: 'v1', labels: { version: 'v1' } }], server);
  try {
    mesh = await createMesh({
      service: 'caller',
      clock,
      random: seededRandom(16),
      logger: { warn: () => undefined, error: () => undefined },
      telemetry: { metrics: { meterProvider: metrics.provider } },
      config: [serviceEntry(workloads.eps, ca !== undefined), ...resources(scenario.name, scenario.yaml)],
      ...(ca === undefined ? {} : { identity: { devCa: ca }, serviceAccount: 'caller' }),
    });
    let send: Caller;
    if (protocol === 'http') send = httpCaller(mesh);
    else {
      client = mesh.grpc.client(EchoClient, `echo:${GRPC_PORT}`) as unknown as Echo;
      send = grpcCaller(client);
    }
    const caller: Caller = async (c) => (c.token === undefined ? send(c) : send({ ...c, headers: { ...c.headers, authorization: `Bearer ${await token(c.token, serverClock)}` } }));
    const c = scenario.call ?? {};
    const drive = scenario.drive ?? { kind: 'calls', count: 1 };
    const served: Record<string, number> = Object.create(null);
    const total = () => Object.values(workloads.hits(protocol)).reduce((a, b) => a + b, 0);
    let seen: Seen;
    if (drive.kind === 'calls') {
      let last: Seen | undefined;
      for (let i = 0; i < drive.count; i++) {
        last = await pumped(clock, caller(drive.calls?.[i] ?? c), drive.stepMs ?? 250);
        if (last.upstream !== null) served[last.upstream] = (served[last.upstream] ?? 0) + 1;
        if (drive.tick?.after === i + 1) serverClock.advance(drive.tick.advanceMs);
      }
      seen = last as Seen;
    } else if (drive.kind === 'clock') {
      const timers = clock.pending;
      const p = caller(c);
      if (drive.parked === 'upstream') await until(() => total() > 0, 'the call to reach a workload');
      else await until(() => clock.pending > timers, 'the call to wait on a mesh timer');
      clock.advance(drive.advanceMs);
      seen = await p;
    } else {
      for (let i = 0; i < drive.held; i++) pending.push(caller(c).catch(() => undefined));
      await until(() => total() >= drive.arrived, `${drive.arrived} held calls to reach a workload`);
      seen = await caller(c);
    }
    const requests = count(await metrics.points('istio_requests_total'), 'source');
    const inbound = count(await serverMetrics.points('istio_requests_total'), 'destination');
    const principal = workloads.eps.map((e) => e.principal[protocol]).find((p) => p !== null) ?? null;
    return { seen, hits: workloads.hits(protocol), served, requests, inbound, principal };
  } finally {
    client?.close();
    await workloads.close();
    await mesh?.close();
    await Promise.allSettled(pending);
    await metrics.shutdown();
    await serverMetrics.shutdown();
  }
}
