
import type { InboundEndMessage } from '../../src/core/observe.ts';
import type { Mesh } from '../../src/index.ts';
export { until } from './until.ts';

export const HOST = 'ratings.default.svc.cluster.local';
export const T0 = Date.UTC(2026, 11, 3, 4, 5, 6);

/** Polls `cond` every 2 ms (up to 2 s of real time: a bound on a hang, not a timing assertion). */
/** A logger that keeps access-log entries (the mesh's own info messages start with "meshlet:") and warnings. */
export function capture() {
  const entries: unknown[] = [];
  const warnings: string[] = [];
  return {
    entries,
    warnings,
    lines: () => entries.filter((e): e is string => typeof e === 'string'),
    logger: {
      warn: (m: string) => warnings.push(m),
      info: (m: unknown) => {
        if (typeof m !== 'string' || !m.startsWith('meshlet:')) entries.push(m);
      },
    },
  };
}

export function telemetry(name: string, spec: Record<string, unknown>, namespace = 'istio-system'): object {
  return { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name, namespace }, spec };
}

export const rules = [
  { name: 'abort', match: [{ uri: { prefix: '/abort' } }], route: [{ destination: { host: 'ratings' } }], fault: { abort: { httpStatus: 503, percentage: { value: 100 } } } },
  { name: 'delay', match: [{ uri: { prefix: '/delay' } }], route: [{ destination: { host: 'ratings' } }], fault: { delay: { fixedDelay: '30ms', percentage: { value: 100 } } } },
  { name: 'ok', route: [{ destination: { host: 'ratings' } }] },
];

/** A server-side message as the server adapters publish it (the trace helper wires the adapters). */
export function inboundEnd(mesh: Mesh, over: Partial<InboundEndMessage> = {}): InboundEndMessage {
  return {
    workload: mesh.identity,
    request: {},
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'reviews:9080',
    path: '/reviews/1',
    headers: { 'user-agent': 'curl/8.5.0', 'x-request-id': 'req-7' },
    status: 200,
    grpcStatus: -1,
    flags: '',
    details: 'via_upstream',
    deniedBy: undefined,
    requestBytes: 0,
    responseBytes: 12,
    durationMs: 3,
    mtls: false,
    peer: undefined,
    requestPrincipal: undefined,
    authzPolicy: undefined,
    remoteAddress: '10.0.0.5',
    remotePort: 40000,
    localAddress: '10.0.0.7',
    localPort: 9080,
    sni: undefined,
    responseHeaders: undefined,
    error: undefined,
    ...over,
  };
}
