/**
 * The few values of the OpenTelemetry SDK's enums that `meshlet/telemetry` needs at run time,
 * spelled out here so importing `meshlet/telemetry` (and using {@link meshletMetricProducer}
 * with your own SDK) loads no SDK package: they are optional peer dependencies, loaded by
 * `startTelemetry()` only. Their types still come from `@opentelemetry/sdk-metrics` (type-only
 * imports, erased), and `sdk-values.test.ts` pins each value to the installed SDK's.
 *
 * @module
 */
import type { Resource } from '@opentelemetry/resources';
import type { AggregationOption, AggregationTemporality, DataPointType, InstrumentType } from '@opentelemetry/sdk-metrics';

/** `AggregationTemporality.DELTA`. */
export const DELTA = 0 as AggregationTemporality.DELTA;
/** `AggregationTemporality.CUMULATIVE`. */
export const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
/** `DataPointType.HISTOGRAM`. */
export const HISTOGRAM_POINTS = 0 as DataPointType.HISTOGRAM;
/** `DataPointType.GAUGE`. */
export const GAUGE_POINTS = 2 as DataPointType.GAUGE;
/** `DataPointType.SUM`. */
export const SUM_POINTS = 3 as DataPointType.SUM;
/** `InstrumentType.COUNTER`. */
export const COUNTER_INSTRUMENT = 'COUNTER' as InstrumentType.COUNTER;
/** `InstrumentType.HISTOGRAM`. */
export const HISTOGRAM_INSTRUMENT = 'HISTOGRAM' as InstrumentType.HISTOGRAM;
/** `{ type: AggregationType.DEFAULT }`: the SDK's default aggregation per instrument. */
export const DEFAULT_AGGREGATION = { type: 0 } as AggregationOption;

/**
 * A resource with no attributes (what `emptyResource()` of `@opentelemetry/resources` gives): a
 * metric producer's resource, which readers drop (they keep their MeterProvider's).
 */
export const EMPTY_RESOURCE: Resource = Object.freeze({
  attributes: Object.freeze({}),
  asyncAttributesPending: false,
  waitForAsyncAttributes: async (): Promise<void> => {},
  merge: (other: Resource | null): Resource => other ?? EMPTY_RESOURCE,
  getRawAttributes: () => [],
});
