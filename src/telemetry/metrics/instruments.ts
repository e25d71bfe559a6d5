/**
 * Istio's standard HTTP and gRPC metrics as OpenTelemetry instruments of one MeterProvider (names, units,
 * descriptions and Envoy's bucket bounds), for data points that go through the OTel API.
 *
 * @module
 */
import { type Counter, createNoopMeter, type Histogram, type MeterProvider } from '@opentelemetry/api';
import { type HttpMetric, METRIC_NAMES } from './config.ts';

/** Envoy's default histogram buckets (ms for durations; the same bounds for sizes). */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]);

/** The meter's instrumentation scope name. */
export const METER_NAME = 'meshlet';

/** Each metric's description and unit (as the instruments, and meshlet's own aggregation, describe them). */
export const DESCRIPTIONS: Readonly<Record<HttpMetric, { readonly description: string; readonly unit: string }>> = {
  REQUEST_COUNT: { description: 'Requests, counted when they end (Istio standard metric)', unit: '' },
  REQUEST_DURATION: { description: 'Request duration (Istio standard metric)', unit: 'ms' },
  REQUEST_SIZE: { description: 'Request size (Istio standard metric)', unit: 'By' },
  RESPONSE_SIZE: { description: 'Response size (Istio standard metric)', unit: 'By' },
  GRPC_REQUEST_MESSAGES: { description: 'gRPC messages sent by the client (Istio standard metric)', unit: '' },
  GRPC_RESPONSE_MESSAGES: { description: 'gRPC messages sent by the server (Istio standard metric)', unit: '' },
};

/** The instruments of one provider. */
export interface Instruments {
  readonly provider: MeterProvider;
  /** The provider is the API's no-op one (no SDK installed): nothing is computed. */
  readonly noop: boolean;
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly requestBytes: Histogram;
  readonly responseBytes: Histogram;
  readonly requestMessages: Counter;
  readonly responseMessages: Counter;
}

const NOOP_METER_CLASS = createNoopMeter().constructor;

/** Makes the instruments on `provider`'s meshlet meter. */
export function instrumentsOf(provider: MeterProvider): Instruments {
  const meter = provider.getMeter(METER_NAME);
  const boundaries = { advice: { explicitBucketBoundaries: [...ENVOY_DEFAULT_BUCKETS] } };
  return {
    provider,
    noop: meter.constructor === NOOP_METER_CLASS,
    requests: meter.createCounter(METRIC_NAMES.REQUEST_COUNT, { description: DESCRIPTIONS.REQUEST_COUNT.description }),
    duration: meter.createHistogram(METRIC_NAMES.REQUEST_DURATION, { ...DESCRIPTIONS.REQUEST_DURATION, ...boundaries }),
    requestBytes: meter.createHistogram(METRIC_NAMES.REQUEST_SIZE, { ...DESCRIPTIONS.REQUEST_SIZE, ...boundaries }),
    responseBytes: meter.createHistogram(METRIC_NAMES.RESPONSE_SIZE, { ...DESCRIPTIONS.RESPONSE_SIZE, ...boundaries }),
    requestMessages: meter.createCounter(METRIC_NAMES.GRPC_REQUEST_MESSAGES, { description: DESCRIPTIONS.GRPC_REQUEST_MESSAGES.description }),
    responseMessages: meter.createCounter(METRIC_NAMES.GRPC_RESPONSE_MESSAGES, { description: DESCRIPTIONS.GRPC_RESPONSE_MESSAGES.description }),
  };
}
