/**
 * An Envoy access log service stand-in for the tests: `envoy.service.accesslog.v3.AccessLogService`
 * on grpc-js (127.0.0.1), its messages decoded by @grpc/proto-loader from
 * test/fixtures/als/als.proto (Envoy's field numbers). It keeps every StreamAccessLogs message, by
 * stream; it can refuse streams (`fail`), stop reading them (`slow`, so the client's flow-control
 * window fills up), and be restarted on the same port.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** The log service's Kubernetes name. */
export const ALS_HOST = 'als.observability.svc.cluster.local';

const PROTO = fileURLToPath(new URL('../fixtures/als/als.proto', import.meta.url));

/** A decoded `google.protobuf.Struct` (proto-loader's object form). */
export interface DecodedStruct {
  fields: Record<string, { string_value?: string; stringValue?: string; struct_value?: DecodedStruct; structValue?: DecodedStruct; kind?: string }>;
}

export interface DecodedAddress {
  socket_address: { address: string; port_value: number } | null;
}

export interface DecodedDuration {
  seconds: string;
  nanos: number;
}

/** `TLSProperties.CertificateProperties`. */
export interface DecodedCertificateProperties {
  subject_alt_name: { uri?: string }[];
  subject: string;
}

export interface DecodedEntry {
  common_properties: {
    downstream_remote_address: DecodedAddress | null;
    downstream_local_address: DecodedAddress | null;
    downstream_direct_remote_address: DecodedAddress | null;
    tls_properties: {
      tls_version: string;
      tls_cipher_suite: { value: number } | null;
      tls_sni_hostname: string;
      local_certificate_properties: DecodedCertificateProperties | null;
      peer_certificate_properties: DecodedCertificateProperties | null;
      tls_session_id: string;
    } | null;
    start_time: { seconds: string; nanos: number } | null;
    time_to_last_rx_byte: DecodedDuration | null;
    time_to_last_upstream_tx_byte: DecodedDuration | null;
    time_to_first_upstream_rx_byte: DecodedDuration | null;
    time_to_first_downstream_tx_byte: DecodedDuration | null;
    time_to_last_downstream_tx_byte: DecodedDuration | null;
    upstream_local_address: DecodedAddress | null;
    duration: { seconds: string; nanos: number } | null;
    upstream_remote_address: DecodedAddress | null;
    upstream_cluster: string;
    response_flags: Record<string, unknown> | null;
    upstream_transport_failure_reason: string;
    route_name: string;
    filter_state_objects: Record<string, { type_url: string; value: Buffer }>;
    upstream_request_attempt_count: number;
    stream_id: string;
    access_log_type: string;
  };
  protocol_version: string;
  request: {
    request_method: string;
    scheme: string;
    authority: string;
    path: string;
    user_agent: string;
    referer: string;
    forwarded_for: string;
    request_id: string;
    original_path: string;
    request_headers_bytes: string;
    request_body_bytes: string;
    request_headers: Record<string, string>;
  };
  response: {
    response_code: { value: number } | null;
    response_headers_bytes: string;
    response_body_bytes: string;
    response_headers: Record<string, string>;
    response_trailers: Record<string, string>;
    response_code_details: string;
  };
}

export interface DecodedMessage {
  identifier: { node: { id: string; cluster: string; metadata: DecodedStruct | null; user_agent_name: string }; log_name: string } | null;
  http_logs?: { log_entry: DecodedEntry[] } | null;
  log_entries?: string;
}

const LOAD = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

function service(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(PROTO, LOAD);
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { accesslog: { v3: { AccessLogService: { service: grpc.ServiceDefinition } } } } } };
  return pkg.envoy.service.accesslog.v3.AccessLogService.service;
}

/** Decodes a `google.protobuf.Struct` from its bytes (a filter state object's Any value), with protobufjs. */
export function decodeStruct(b: Buffer): DecodedStruct {
  const Struct = protobuf.loadSync(PROTO).lookupType('google.protobuf.Struct');
  return Struct.toObject(Struct.decode(b), { oneofs: true }) as DecodedStruct;
}

/** The strings of a decoded Struct (nested ones as objects). */
export function structValues(s: DecodedStruct | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) {
    const nested = v.struct_value ?? v.structValue;
    out[k] = nested !== undefined && nested !== null ? structValues(nested) : (v.string_value ?? v.stringValue);
  }
  return out;
}

export interface AlsCollector {
  readonly port: number;
  /** The messages of each stream, in order. */
  readonly streams: DecodedMessage[][];
  /** `ok` takes streams and answers when the client ends one; `fail` refuses them (UNAVAILABLE); `slow` takes them and stops reading. */
  mode: 'ok' | 'fail' | 'slow';
  /** Every entry received, in order. */
  entries(): DecodedEntry[];
  /** Ends every open stream with UNAVAILABLE (the service going away mid-stream). */
  breakStreams(): void;
  /** Stops the server (its port is kept for {@link restart}). */
  stop(): void;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
  close(): void;
}

/** Starts the stand-in on 127.0.0.1, port 0. */
export async function startAlsCollector(): Promise<AlsCollector> {
  const def = service();
  const streams: DecodedMessage[][] = [];
  const open = new Set<grpc.ServerReadableStream<DecodedMessage, unknown>>();
  const callbacks = new Map<grpc.ServerReadableStream<DecodedMessage, unknown>, grpc.sendUnaryData<unknown>>();
  let server: grpc.Server | undefined;
  let port = 0;
  const c: AlsCollector = {
    get port() {
      return port;
    },
    streams,
    mode: 'ok',
    entries: () => streams.flatMap((s) => s.flatMap((m) => m.http_logs?.log_entry ?? [])),
    breakStreams: () => {
      for (const call of [...open]) {
        open.delete(call);
        callbacks.get(call)?.({ code: grpc.status.UNAVAILABLE, details: 'log service going away' } as grpc.ServiceError, null);
      }
    },
    stop: () => {
      c.breakStreams();
      server?.forceShutdown();
      server = undefined;
    },
    restart: () => bind(port),
    close: () => c.stop(),
  };
  const bind = async (at: number): Promise<void> => {
    const s = new grpc.Server();
    s.addService(def, {
      StreamAccessLogs: (call: grpc.ServerReadableStream<DecodedMessage, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (c.mode === 'fail') return void cb({ code: grpc.status.UNAVAILABLE, details: 'log service refuses' } as grpc.ServiceError, null);
        const messages: DecodedMessage[] = [];
        streams.push(messages);
        open.add(call);
        callbacks.set(call, cb);
        if (c.mode === 'slow') call.pause();
        call.on('data', (m: DecodedMessage) => messages.push(m));
        call.on('end', () => {
          if (!open.delete(call)) return;
          cb(null, {});
        });
        call.on('error', () => open.delete(call));
      },
    });
    port = await new Promise<number>((resolve, reject) => s.bindAsync(`127.0.0.1:${at}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    server = s;
  };
  await bind(0);
  return c;
}

/** A one-endpoint gRPC ServiceEntry for the log service on 127.0.0.1:`target` (port 15000 in the mesh). */
export function alsServiceEntry(target: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'als', namespace: 'observability' },
    spec: { hosts: [ALS_HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 15000, name: 'grpc', protocol: 'GRPC' }], endpoints: [{ address: '127.0.0.1', ports: { grpc: target } }] },
  };
}
