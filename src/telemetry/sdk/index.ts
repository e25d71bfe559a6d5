/**
 * `meshlet/telemetry`: sets up the OpenTelemetry Node SDK for applications that have none
 * ({@link startTelemetry}), and the Prometheus endpoint that forgets idle series
 * ({@link EvictingPrometheusReader}) and the producer of the Istio metrics meshlet aggregates
 * itself ({@link meshletMetricProducer}) for those that build their own. Importing it loads no
 * SDK package. `startTelemetry()` imports the SDK packages it needs when called
 * (`@opentelemetry/sdk-node`, `sdk-metrics`, `resources`, `exporter-prometheus` for the Prometheus
 * endpoint, and the OTLP exporter pair of the protocol chosen: `exporter-{trace,metrics}-otlp-proto`,
 * `-http` or `-grpc`), optional peer dependencies of meshlet, and refuses naming the missing ones;
 * `EvictingPrometheusReader` needs `exporter-prometheus` (loaded by `listen()`);
 * `meshletMetricProducer` needs none.
 *
 * @module
 */
export { EvictingPrometheusReader, type EvictingPrometheusOptions } from './evicting-prometheus.ts';
export { type MeshletMetricProducer, type MeshletMetricProducerOptions, meshletMetricProducer } from './metric-producer.ts';
export type { OtlpProtocol } from './otlp-exporters.ts';
export { type OtlpOptions, type PrometheusOptions, startTelemetry, type StartTelemetryOptions, type Telemetry } from './start-telemetry.ts';
