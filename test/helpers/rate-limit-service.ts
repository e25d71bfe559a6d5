/**
 * A rate limit service for the tests: Envoy's `envoy.service.ratelimit.v3.RateLimitService` on
 * grpc-js (127.0.0.1, port 0), decoded by @grpc/proto-loader from test/fixtures/ratelimit/rls.proto,
 * with the semantics of envoyproxy/ratelimit's config (Istio's `rate-limit-configmap.yaml`): a
 * `domain`, `descriptors` matched entry by entry (a `value` matches that value, no `value` any
 * value), each with `rate_limit: {unit, requests_per_unit}` counted in fixed windows of the unit
 * on an injected clock (`now`, in ms).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO = new URL('../fixtures/ratelimit/rls.proto', import.meta.url).pathname;

export interface ConfigDescriptor {
  readonly key: string;
  readonly value?: string;
  readonly rate_limit?: { readonly unit: 'second' | 'minute' | 'hour' | 'day'; readonly requests_per_unit: number; readonly name?: string };
  readonly descriptors?: readonly ConfigDescriptor[];
}

export interface RlsConfig {
  readonly domain: string;
  readonly descriptors: readonly ConfigDescriptor[];
}

export interface SeenRequest {
  readonly domain: string;
  readonly descriptors: { key: string; value: string }[][];
  readonly hits_addend: number;
  /** Each descriptor's own hits_addend, where it has one (undefined: none has). */
  readonly descriptorHits?: (number | undefined)[];
}

/** What the service answers besides the counting: `error` fails the call, `hang` never answers. */
export interface RlsControl {
  mode: 'count' | 'error' | 'hang';
  responseHeaders: { key: string; value: string }[];
  requestHeaders: { key: string; value: string }[];
  rawBody: string;
  /** Calls the caller cancelled (while hanging). */
  cancelled: number;
}

const UNIT_MS = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;
const UNIT_ENUM = { second: 1, minute: 2, hour: 3, day: 4 } as const;

function find(list: readonly ConfigDescriptor[] | undefined, entry: { key: string; value: string }): ConfigDescriptor | undefined {
  return list?.find((d) => d.key === entry.key && d.value === entry.value) ?? list?.find((d) => d.key === entry.key && d.value === undefined);
}

export interface RateLimitService {
  readonly port: number;
  readonly seen: SeenRequest[];
  readonly control: RlsControl;
  /** `grpc.health.v1.Health/Check` calls answered (with `{ health: true }`; else the server answers them UNIMPLEMENTED). */
  readonly healthChecks: number;
  close(): void;
}

/** `health`: also serve the gRPC health check, as envoyproxy/ratelimit does (src/server/health.go: SERVING). */
export async function startRateLimitService(config: RlsConfig, now: () => number, options: { health?: boolean } = {}): Promise<RateLimitService> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { ratelimit: { v3: { RateLimitService: { service: grpc.ServiceDefinition } } } } } };
  const seen: SeenRequest[] = [];
  const control: RlsControl = { mode: 'count', responseHeaders: [], requestHeaders: [], rawBody: '', cancelled: 0 };
  const counts = new Map<string, number>();
  const hanging: grpc.sendUnaryData<unknown>[] = [];
  const server = new grpc.Server();
  server.addService(pkg.envoy.service.ratelimit.v3.RateLimitService.service, {
    ShouldRateLimit: (call: grpc.ServerUnaryCall<{ domain: string; descriptors: { entries: { key: string; value: string }[]; hits_addend: { value: number } | null }[]; hits_addend: number }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      const req = call.request;
      const descriptorHits = req.descriptors.map((d) => d.hits_addend?.value);
      seen.push({
        domain: req.domain,
        descriptors: req.descriptors.map((d) => d.entries.map((e) => ({ key: e.key, value: e.value }))),
        hits_addend: req.hits_addend,
        ...(descriptorHits.some((h) => h !== undefined) ? { descriptorHits } : {}),
      });
      if (control.mode === 'hang') {
        call.on('cancelled', () => control.cancelled++);
        return void hanging.push(cb);
      }
      if (control.mode === 'error') return cb({ code: grpc.status.UNAVAILABLE, details: 'rate limit service down' } as grpc.ServiceError, null);
      let over = false;
      const statuses = req.descriptors.map((d) => {
        let node: ConfigDescriptor | undefined;
        let list: readonly ConfigDescriptor[] | undefined = req.domain === config.domain ? config.descriptors : undefined;
        for (const e of d.entries) {
          node = find(list, e);
          if (node === undefined) break;
          list = node.descriptors;
        }
        const limit = node?.rate_limit;
        if (limit === undefined) return { code: 'OK', limit_remaining: 0 };
        const unit = UNIT_MS[limit.unit];
        const window = Math.floor(now() / unit);
        const key = `${window}|${d.entries.map((e) => `${e.key}=${e.value}`).join(',')}`;
        // envoyproxy/ratelimit: the descriptor's hits_addend, else the request's (0: one).
        const n = (counts.get(key) ?? 0) + (d.hits_addend?.value ?? Math.max(1, req.hits_addend));
        counts.set(key, n);
        const code = n > limit.requests_per_unit ? 'OVER_LIMIT' : 'OK';
        if (code === 'OVER_LIMIT') over = true;
        return {
          code,
          current_limit: { requests_per_unit: limit.requests_per_unit, unit: UNIT_ENUM[limit.unit], name: limit.name ?? '' },
          limit_remaining: Math.max(0, limit.requests_per_unit - n),
          duration_until_reset: { seconds: Math.ceil(((window + 1) * unit - now()) / 1000), nanos: 0 },
        };
      });
      cb(null, {
        overall_code: over ? 'OVER_LIMIT' : 'OK',
        statuses,
        response_headers_to_add: control.responseHeaders,
        request_headers_to_add: control.requestHeaders,
        raw_body: Buffer.from(over ? control.rawBody : ''),
      });
    },
  });
  let healthChecks = 0;
  if (options.health === true) {
    const raw = (b: Buffer): Buffer => b;
    const check = { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw, originalName: 'check' };
    // HealthCheckResponse { status: SERVING (1) }.
    server.addService({ Check: check } as grpc.ServiceDefinition, {
      Check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        healthChecks++;
        cb(null, Buffer.from([8, 1]));
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return {
    port,
    seen,
    control,
    get healthChecks() {
      return healthChecks;
    },
    close: () => {
      for (const cb of hanging.splice(0)) cb({ code: grpc.status.CANCELLED } as grpc.ServiceError, null);
      server.forceShutdown();
    },
  };
}

export const RL_NS = 'istio-ratelimit';
export const ECHO_NS = 'echo';
const SRV = `srv.${ECHO_NS}.svc.cluster.local`;

/** Istio's rate-limit-configmap.yaml `config.yaml`. */
export const ISTIO_CONFIGMAP = {
  domain: 'echo-ratelimit',
  descriptors: [
    { key: 'PATH', value: '/', rate_limit: { unit: 'minute', requests_per_unit: 1 } },
    { key: 'PATH', rate_limit: { unit: 'minute', requests_per_unit: 100 } },
  ],
} as const;

/** The rate limit service's and the upstream's Kubernetes Services, their endpoints on 127.0.0.1. */
export function services(rlsPort: number, upPort: number): object[] {
  const se = (name: string, ns: string, host: string, port: number, protocol: string, target: number) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: ns },
    spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: protocol.toLowerCase(), protocol }], endpoints: [{ address: '127.0.0.1', ports: { [protocol.toLowerCase()]: target } }] },
  });
  return [se('ratelimit', RL_NS, `ratelimit.${RL_NS}.svc.cluster.local`, 8081, 'GRPC', rlsPort), se('srv', ECHO_NS, SRV, 80, 'HTTP', upPort)];
}

