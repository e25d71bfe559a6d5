/**
 * An OpenTelemetry collector stand-in for the tests: `opentelemetry.proto.collector.logs.v1.LogsService`
 * on grpc-js (127.0.0.1, port 0), its messages decoded by @grpc/proto-loader from
 * test/fixtures/otlp/logs_service.proto (opentelemetry-proto's field numbers). It keeps each
 * Export request and can fail or hang its answers.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The collector's Kubernetes name, as Istio's task names it. */
export const OTEL_HOST = 'opentelemetry-collector.observability.svc.cluster.local';
/** The service the tests call. */
export const RATINGS = 'ratings.default.svc.cluster.local';

/** A one-endpoint ServiceEntry on 127.0.0.1 (`protocol` HTTP or GRPC; `target` the endpoint's port). */
export function localServiceEntry(name: string, ns: string, host: string, port: number, protocol: string, target: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name, namespace: ns },
    spec: { hosts: [host], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: port, name: protocol.toLowerCase(), protocol }], endpoints: [{ address: '127.0.0.1', ports: { [protocol.toLowerCase()]: target } }] },
  };
}

/** ServiceEntries for the collector (gRPC, on `collectorPort`) and for ratings (HTTP, on `ratingsPort`). */
export function collectorAndRatings(collectorPort: number, ratingsPort: number): object[] {
  return [localServiceEntry('otel-collector', 'observability', OTEL_HOST, 4317, 'GRPC', collectorPort), localServiceEntry('ratings', 'default', RATINGS, 9080, 'HTTP', ratingsPort)];
}

const PROTO = new URL('../fixtures/otlp/logs_service.proto', import.meta.url).pathname;

export interface DecodedKeyValue {
  key: string;
  value: { string_value?: string; value?: string };
}

export interface DecodedLogRecord {
  time_unix_nano: string;
  observed_time_unix_nano: string;
  body: { string_value?: string; value?: string } | null;
  attributes: DecodedKeyValue[];
  trace_id: Buffer;
  span_id: Buffer;
}

export interface DecodedExport {
  resource_logs: { resource: { attributes: DecodedKeyValue[] } | null; scope_logs: { scope: unknown; log_records: DecodedLogRecord[] }[] }[];
}

/** The protobuf codec of the fixture's messages (for decoding without a server). */
export function otlpCodec(): grpc.MethodDefinition<DecodedExport, { partial_success?: { rejected_log_records: number; error_message: string } }> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { opentelemetry: { proto: { collector: { logs: { v1: { LogsService: { service: grpc.ServiceDefinition } } } } } } };
  return pkg.opentelemetry.proto.collector.logs.v1.LogsService.service['Export'] as never;
}

export interface Collector {
  readonly port: number;
  /** Every Export request, decoded. */
  readonly exports: DecodedExport[];
  /** Metadata of each Export call (its `:authority` is grpc-js's). */
  readonly metadata: grpc.Metadata[];
  /** `ok` answers, `error` fails with UNAVAILABLE, `hang` never answers. */
  mode: 'ok' | 'error' | 'hang';
  /** Calls held without an answer (`hang`). */
  readonly held: number;
  /** The log records received, in order. */
  records(): DecodedLogRecord[];
  /** The records' bodies. */
  bodies(): string[];
  close(): void;
}

/** Starts the stand-in, bound on 127.0.0.1:0 by grpc-js, or by `bind` (e.g. a mesh's `mesh.grpc.bind`). */
export async function startCollector(bind?: (server: grpc.Server) => Promise<number>): Promise<Collector> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { opentelemetry: { proto: { collector: { logs: { v1: { LogsService: { service: grpc.ServiceDefinition } } } } } } };
  const exports: DecodedExport[] = [];
  const metadata: grpc.Metadata[] = [];
  const hanging: grpc.sendUnaryData<unknown>[] = [];
  const server = new grpc.Server();
  const c: Collector = {
    port: 0,
    exports,
    metadata,
    mode: 'ok',
    get held() {
      return hanging.length;
    },
    records: () => exports.flatMap((e) => e.resource_logs.flatMap((rl) => rl.scope_logs.flatMap((s) => s.log_records))),
    bodies: () => c.records().map((r) => r.body?.string_value ?? ''),
    close: () => {
      for (const cb of hanging.splice(0)) cb({ code: grpc.status.UNAVAILABLE, details: 'closing' } as grpc.ServiceError, null);
      server.forceShutdown();
    },
  };
  server.addService(pkg.opentelemetry.proto.collector.logs.v1.LogsService.service, {
    Export: (call: grpc.ServerUnaryCall<DecodedExport, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (c.mode === 'hang') return void hanging.push(cb);
      if (c.mode === 'error') return cb({ code: grpc.status.UNAVAILABLE, details: 'collector down' } as grpc.ServiceError, null);
      exports.push(call.request);
      metadata.push(call.metadata);
      cb(null, {});
    },
  });
  const port = bind !== undefined ? await bind(server) : await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  (c as { port: number }).port = port;
  return c;
}
