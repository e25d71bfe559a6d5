/**
 * What an application with TypeScript's `strict` and `exactOptionalPropertyTypes` (on in the
 * tsconfig TS 6's `tsc --init` writes) passes to meshlet: options that may be `undefined`, as
 * values read from the environment are. Compiled by test/package/types.test.ts against the
 * built declarations; every line here must type-check.
 */
import { createMesh, type MeshOptions, type RegisterOptions } from 'meshlet';
import { meshletMetricProducer, startTelemetry } from 'meshlet/telemetry';

const env = (name: string): string | undefined => process.env[name];
const num = (name: string): number | undefined => (env(name) === undefined ? undefined : Number(env(name)));

// README.md (control-plane mode), docs/control-plane-client.md, docs/identity.md.
const fromControlPlane = await createMesh({
  service: 'reviews',
  labels: { version: 'v2' },
  controlPlane: ['http://cp-0:15010', 'http://cp-1:15010'],
  token: process.env.MESHLET_TOKEN,
  cacheDir: env('MESHLET_CACHE_DIR'),
});
await fromControlPlane.close();

// Every optional option of createMesh, explicitly undefined.
const everything: MeshOptions = {
  service: 'productpage',
  namespace: env('POD_NAMESPACE'),
  labels: undefined,
  serviceAccount: env('SERVICE_ACCOUNT'),
  workloadName: undefined,
  config: env('MESH_CONFIG'),
  controlPlane: undefined,
  controlPlaneCa: env('MESHLET_CONTROL_PLANE_CA'),
  token: undefined,
  tokenFile: undefined,
  cacheDir: undefined,
  startupTimeoutMs: num('STARTUP_TIMEOUT_MS'),
  signal: undefined,
  failOpen: undefined,
  drainMs: undefined,
  errors: undefined,
  closeTimeoutMs: undefined,
  probePaths: undefined,
  locality: undefined,
  localityLbSetting: undefined,
  sourceIp: undefined,
  outboundTrafficPolicy: undefined,
  retryBufferBytes: undefined,
  maxRetryAfterMs: undefined,
  trustEnvoyRequestHeaders: undefined,
  maxMirrorsInFlight: undefined,
  analysis: undefined,
  watch: undefined,
  pathNormalization: undefined,
  rootNamespace: undefined,
  trustDomain: undefined,
  trustDomainAliases: undefined,
  enableAutoMtls: undefined,
  identity: undefined,
  extensionProviders: [
    { name: 'authz', envoyExtAuthzHttp: { service: 'authz.foo.svc.cluster.local', port: 8000, timeout: undefined, pathPrefix: undefined } },
    { name: 'otel', envoyOtelAls: { service: 'otel.observability.svc.cluster.local', port: 4317, logName: undefined, logFormat: { text: undefined, labels: undefined } } },
  ],
  numTrustedProxies: num('TRUSTED_PROXIES'),
  proxyHeaders: { forwardedClientCert: undefined, setCurrentClientCertDetails: { subject: undefined, uri: undefined, dns: undefined, cert: undefined, chain: undefined }, requestId: { disabled: undefined }, attemptCount: undefined, envoyDebugHeaders: undefined, server: { disabled: undefined, value: undefined }, metadataExchangeHeaders: { mode: undefined }, xForwardedPort: { enabled: undefined }, xForwardedHost: undefined, preserveHttp1HeaderCase: undefined },
  jwt: { tokenCacheSize: undefined, maxTokenChars: undefined, jwksCacheDurationMs: undefined, dispatcher: undefined },
  meshConfig: env('ISTIO_MESH_CONFIG'),
  logger: undefined,
  dns: { refreshRateMs: num('DNS_REFRESH_MS'), resolve: undefined },
  clock: undefined,
  random: undefined,
  telemetry: {
    accessLog: { file: env('ACCESS_LOG'), encoding: undefined, format: undefined, defaultProviders: undefined },
    ownMetrics: { meterProvider: undefined, endpointLabels: undefined },
    tracing: { enabled: undefined, samplingPercentage: num('SAMPLING'), propagation: undefined, providers: undefined, customTags: undefined, meshId: undefined, clusterId: undefined },
    metrics: { enabled: undefined, meterProvider: undefined, maxSeries: undefined, idleSeriesMs: undefined, clusterId: undefined },
  },
};
const mesh = await createMesh(everything);
const registration: RegisterOptions = { ports: { http: 9080 }, group: undefined, address: env('POD_IP'), weight: undefined, leaseMs: undefined, labels: undefined, locality: undefined, network: undefined, allowExecProbe: undefined, probeHosts: undefined };
void registration;
await mesh.explainInbound({ url: 'http://productpage:9080/', method: undefined, headers: undefined, port: undefined, source: { principal: undefined, namespace: undefined, ip: undefined }, token: undefined });
mesh.explain({ url: 'http://reviews:9080/', method: undefined, headers: undefined });
await mesh.close();

// meshlet/telemetry.
const telemetry = await startTelemetry({
  serviceName: env('OTEL_SERVICE_NAME'),
  resourceAttributes: undefined,
  otlp: { protocol: undefined, endpoint: env('OTEL_EXPORTER_OTLP_ENDPOINT'), headers: undefined, traces: undefined, metrics: undefined, exportIntervalMs: undefined, temporality: undefined },
  prometheus: { port: num('PROMETHEUS_PORT'), host: undefined, paths: undefined, idleSeriesMs: undefined, withoutTargetInfo: undefined },
});
meshletMetricProducer({ temporality: undefined }).release();
await telemetry.shutdown();
