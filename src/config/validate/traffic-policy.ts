/**
 * Validation of a DestinationRule `TrafficPolicy`, used unchanged at the destination,
 * subset and port levels: connection pool, outlier detection, client TLS, port-level
 * settings, retry budget, and the accepted-but-unsupported tunnel and PROXY protocol.
 *
 * @module
 */
import { KEEPALIVE_PROBES_SETTABLE } from '../../core/tcp-keepalive.ts';
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  HTTPSettings,
  OutlierDetection,
  PortTrafficPolicy,
  ProxyProtocol,
  RetryBudget,
  TCPSettings,
  TrafficPolicy,
  TunnelSettings,
} from '../types/networking.ts';
import { isIpAddress, portSelector } from './common.ts';
import { loadBalancerSettings, wantsFailover } from './load-balancer.ts';
import { checkFqdn, INT32_MAX, msDuration, UINT32_MAX } from './shared-networking.ts';
import {
  bool,
  deprecated,
  fail,
  int,
  list,
  nonEmpty,
  num,
  obj,
  oneOf,
  port,
  req,
  str,
  strWith,
  unsupported,
  warn,
  type Ctx,
  type Validator,
} from './schema.ts';
import type { FieldPath } from '../issues.ts';

/** A protobuf `int32` count that must not be negative. */
const count = int({ min: 0, max: INT32_MAX });
/** A protobuf `uint32` count. */
const ucount = int({ min: 0, max: UINT32_MAX });

const tcpSettings = obj<TCPSettings>({
  maxConnections: count,
  connectTimeout: msDuration(),
  // Applied (adapters/keepalive.ts); a Node older than 24.19 sets only the idle time.
  tcpKeepalive: obj<{ probes?: number; time?: string; interval?: string }>({
    probes: KEEPALIVE_PROBES_SETTABLE ? ucount : unsupported(ucount, `Node ${process.version} cannot set a socket's keepalive probe count (Node 24.19 and later can); Node's default (10) applies`),
    time: msDuration(),
    interval: KEEPALIVE_PROBES_SETTABLE ? msDuration() : unsupported(msDuration(), `Node ${process.version} cannot set a socket's keepalive probe interval (Node 24.19 and later can); Node's default (1s) applies`),
  }),
  // Applied: undici's Pool clientTtl, the gRPC transport's connections (adapters/grpc/pools.ts).
  maxConnectionDuration: msDuration(),
  // 0s disables the idle timeout (istio/istio#55409).
  idleTimeout: msDuration({ allowZero: true }),
});

const httpSettings = obj<HTTPSettings>(
  {
    http1MaxPendingRequests: count,
    http2MaxRequests: count,
    maxRequestsPerConnection: count,
    maxRetries: count,
    idleTimeout: msDuration(),
    // Applied: UPGRADE sends calls to an HTTP port over HTTP/2 (h2c), as Envoy does (routing/cluster-settings.ts).
    h2UpgradePolicy: oneOf(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    // Applied: calls keep the protocol the client speaks — HTTP/1.1 for fetch and undici, HTTP/2 for gRPC (routing/cluster-settings.ts).
    useClientProtocol: bool,
    maxConcurrentStreams: count,
    // Applied: PINGs at the interval; the timeout closes an unanswered gRPC connection (undici's HTTP/2 has no PING timeout).
    // Istio requires both (validateConnectionPool: "http2 keepalive interval/timeout is required").
    http2KeepAlive: obj<{ interval?: string; timeout?: string }>({ interval: req(msDuration()), timeout: req(msDuration()) }),
  },
  {
    check: (h, path, ctx) => {
      if (h.h2UpgradePolicy === 'UPGRADE' && h.useClientProtocol === true) {
        fail(ctx, [...path, 'useClientProtocol'], 'cannot be true when h2UpgradePolicy is UPGRADE');
      }
    },
  },
);

/** Validates `connectionPool`. */
export const connectionPoolSettings: Validator<ConnectionPoolSettings> = obj<ConnectionPoolSettings>(
  { tcp: tcpSettings, http: httpSettings },
  { check: (_cp, path, ctx, raw) => requireSome(raw, path, ctx, 'connectionPool must set tcp or http') },
);

/** Validates `outlierDetection`. */
export const outlierDetection: Validator<OutlierDetection> = obj<OutlierDetection>(
  {
    consecutiveErrors: deprecated(count, 'consecutive5xxErrors (or consecutiveGatewayErrors)'),
    splitExternalLocalOriginErrors: bool,
    consecutiveLocalOriginFailures: ucount,
    consecutiveGatewayErrors: ucount,
    consecutive5xxErrors: ucount,
    interval: msDuration(),
    baseEjectionTime: msDuration(),
    maxEjectionPercent: int({ min: 0, max: 100 }),
    minHealthPercent: int({ min: 0, max: 100 }),
    outlierDetectionHttpErrorCodes: list(int({ min: 100, max: 599, why: '(an HTTP status code)' }), { unique: true }),
  },
  {
    check: (od, path, ctx) => {
      if ((od.consecutiveLocalOriginFailures ?? 0) > 0 && od.splitExternalLocalOriginErrors !== true) {
        fail(ctx, [...path, 'consecutiveLocalOriginFailures'], 'has no effect unless splitExternalLocalOriginErrors is true');
      }
    },
  },
);

const has = (s: string | undefined): s is string => s !== undefined && s !== '';

/** Validates client `tls` settings. */
export const clientTlsSettings: Validator<ClientTLSSettings> = obj<ClientTLSSettings>(
  {
    mode: oneOf(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']),
    clientCertificate: str,
    privateKey: str,
    caCertificates: str,
    credentialName: unsupported(str, 'there are no Kubernetes secrets, so calls that use this setting fail (never in plaintext); use clientCertificate/privateKey/caCertificates files'),
    subjectAltNames: list(nonEmpty),
    sni: str,
    insecureSkipVerify: bool,
    caCrl: str,
  },
  {
    check: (t, path, ctx) => {
      checkTls(t, path, ctx);
    },
  },
);

function checkTls(t: ClientTLSSettings, path: FieldPath, ctx: Ctx): void {
  const at = (field: string, message: string) => fail(ctx, [...path, field], message);
  if (t.mode === 'ISTIO_MUTUAL') {
    // Istio mutual TLS brings its own certificates.
    for (const f of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'caCrl'] as const) {
      if (has(t[f])) at(f, 'must be empty when mode is ISTIO_MUTUAL (the mesh issues the certificates)');
    }
    if (t.insecureSkipVerify === true) warn(ctx, [...path, 'insecureSkipVerify'], "has no effect with ISTIO_MUTUAL: in-mesh mTLS always verifies the server's certificate against the mesh's roots and its SPIFFE identity");
    return;
  }
  const tlsOrigination = t.mode === 'SIMPLE' || t.mode === 'MUTUAL';
  if (t.insecureSkipVerify === true && tlsOrigination) {
    const conflicting = t.mode === 'SIMPLE' ? (['caCertificates', 'credentialName'] as const) : (['caCertificates'] as const);
    for (const f of conflicting) if (has(t[f])) at(f, 'cannot be set when insecureSkipVerify is true');
    if (t.subjectAltNames !== undefined) at('subjectAltNames', 'cannot be set when insecureSkipVerify is true');
  }
  if (tlsOrigination && has(t.credentialName)) {
    for (const f of ['clientCertificate', 'privateKey', 'caCertificates', 'caCrl'] as const) {
      if (has(t[f])) at(f, 'cannot be set together with credentialName');
    }
    return;
  }
  if (t.mode === 'MUTUAL') {
    if (!has(t.clientCertificate)) at('clientCertificate', 'is required when mode is MUTUAL');
    if (!has(t.privateKey)) at('privateKey', 'is required when mode is MUTUAL');
  }
}

const tunnelSettings = obj<TunnelSettings>({
  protocol: oneOf(['CONNECT', 'POST']),
  targetHost: req(strWith((s) => (isIpAddress(s) ? undefined : checkFqdn(s)))),
  targetPort: req(port),
});

const proxyProtocol = obj<ProxyProtocol>({ version: oneOf(['V1', 'V2']) });

const retryBudget = obj<RetryBudget>({
  percent: num({ min: 0, max: 100 }),
  minRetryConcurrency: ucount,
  budgetInterval: unsupported(msDuration(), 'meshlet budgets retries against the requests active now, not over an interval'),
});

/** Reports `message` at `path` when the raw object has no fields (Istio rejects empty policy blocks). */
function requireSome(raw: Record<string, unknown>, path: FieldPath, ctx: Ctx, message: string): void {
  if (Object.values(raw).every((v) => v === undefined || v === null)) fail(ctx, path, message);
}

/** Warns when locality failover is configured without the outlier detection it depends on. */
function checkFailover(p: { loadBalancer?: TrafficPolicy['loadBalancer']; outlierDetection?: OutlierDetection }, path: FieldPath, ctx: Ctx): void {
  if (wantsFailover(p.loadBalancer) && p.outlierDetection === undefined) {
    const setting = p.loadBalancer?.zoneAwareLbSetting !== undefined ? 'zoneAwareLbSetting' : 'localityLbSetting';
    warn(ctx, [...path, 'loadBalancer', setting], 'failover has no effect without outlierDetection in the same policy');
  }
}

const portTrafficPolicy = obj<PortTrafficPolicy>(
  {
    port: req(portSelector),
    loadBalancer: loadBalancerSettings,
    connectionPool: connectionPoolSettings,
    outlierDetection,
    tls: clientTlsSettings,
  },
  {
    check: (p, path, ctx, raw) => {
      const rest = Object.fromEntries(Object.entries(raw).filter(([k]) => k !== 'port'));
      requireSome(rest, path, ctx, 'a port-level policy must set loadBalancer, connectionPool, outlierDetection or tls');
      checkFailover(p, path, ctx);
    },
  },
);

/** Validates a `TrafficPolicy` (destination, subset and port level use the same rules). */
export const trafficPolicy: Validator<TrafficPolicy> = obj<TrafficPolicy>(
  {
    loadBalancer: loadBalancerSettings,
    connectionPool: connectionPoolSettings,
    outlierDetection,
    tls: clientTlsSettings,
    portLevelSettings: list(portTrafficPolicy, { max: 4096 }),
    tunnel: unsupported(tunnelSettings, 'meshlet routes HTTP and gRPC only; TCP tunnelling (CONNECT/POST) is not done'),
    proxyProtocol: unsupported(proxyProtocol, 'meshlet does not send PROXY protocol headers'),
    retryBudget,
  },
  {
    oneOf: [['tunnel', 'proxyProtocol']],
    check: (tp, path, ctx, raw) => {
      requireSome(raw, path, ctx, 'trafficPolicy must set at least one policy');
      checkFailover(tp, path, ctx);
      checkDuplicatePorts(raw.portLevelSettings, [...path, 'portLevelSettings'], ctx);
    },
  },
);

/** Reports port-level entries whose port number repeats an earlier one. */
function checkDuplicatePorts(raw: unknown, path: FieldPath, ctx: Ctx): void {
  if (!Array.isArray(raw)) return;
  const seen = new Map<number, number>();
  raw.forEach((entry: unknown, i) => {
    const n = (entry as { port?: { number?: unknown } } | null)?.port?.number;
    if (typeof n !== 'number') return;
    const first = seen.get(n);
    if (first === undefined) seen.set(n, i);
    else fail(ctx, [...path, i, 'port', 'number'], `port ${n} already has a policy at portLevelSettings[${first}]`);
  });
}
