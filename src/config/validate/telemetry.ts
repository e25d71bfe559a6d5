/**
 * Validation of `TelemetrySpec`, following Istio's `ValidateTelemetry`: tracing (providers,
 * sampling, custom tags), metrics overrides (metric selectors, tag overrides) and access
 * logging. Access-log filters are evaluated (src/telemetry/cel.ts); CEL tag override values
 * are accepted with a warning.
 *
 * @module
 */
import type {
  IstioMetric,
  MetricsOverride,
  ProviderRef,
  TelemetryAccessLogging,
  TelemetryMetrics,
  TelemetrySpec,
  TelemetryTracing,
  TracingCustomTag,
  WorkloadMode,
} from '../types/telemetry.ts';
import { checkCel } from './cel.ts';
import { checkScope, isSet, scopeFields } from './policy-scope.ts';
import { bool, durationStr, fail, list, map, nonEmpty, num, obj, oneOf, req, str, strWith, unsupported, warn, type Validator } from './schema.ts';

const MODES: readonly WorkloadMode[] = ['CLIENT_AND_SERVER', 'CLIENT', 'SERVER'];

const METRICS: readonly IstioMetric[] = [
  'ALL_METRICS',
  'REQUEST_COUNT',
  'REQUEST_DURATION',
  'REQUEST_SIZE',
  'RESPONSE_SIZE',
  'TCP_OPENED_CONNECTIONS',
  'TCP_CLOSED_CONNECTIONS',
  'TCP_SENT_BYTES',
  'TCP_RECEIVED_BYTES',
  'GRPC_REQUEST_MESSAGES',
  'GRPC_RESPONSE_MESSAGES',
];

const workloadMatch = obj<{ mode?: WorkloadMode }>({ mode: oneOf(MODES) });

const providers: Validator<ProviderRef[]> = list(obj<ProviderRef>({ name: req(nonEmpty) }));

const customTag = obj<TracingCustomTag>(
  {
    literal: obj<{ value: string }>({ value: req(nonEmpty) }),
    environment: obj<{ name: string; defaultValue?: string }>({ name: req(nonEmpty), defaultValue: str }),
    header: obj<{ name: string; defaultValue?: string }>({ name: req(nonEmpty), defaultValue: str }),
    formatter: obj<{ value: string }>({ value: req(nonEmpty) }),
  },
  { exactlyOne: [['literal', 'environment', 'header', 'formatter']] },
);

const tracing = obj<TelemetryTracing>(
  {
    match: workloadMatch,
    providers,
    randomSamplingPercentage: num({ min: 0, max: 100 }),
    disableSpanReporting: bool,
    customTags: map(customTag, { key: (k) => (k.trim() === '' ? 'tag name must not be empty' : undefined) }),
    enableIstioTags: bool,
    disableContextPropagation: bool,
    useRequestIdForTraceSampling: unsupported(bool, 'meshlet decides sampling by randomSamplingPercentage alone'),
  },
  {
    check: (t, path, ctx) => {
      const [first, ...rest] = t.providers ?? [];
      if (first !== undefined && rest.length > 0) {
        warn(
          ctx,
          [...path, 'providers'],
          `only one provider per tracing entry is supported (Istio: "multiple providers is not currently supported"); "${first.name}" is used, ${rest.map((p) => `"${p.name}"`).join(', ')} ignored`,
        );
      }
    },
  },
);

type TagOverride = NonNullable<MetricsOverride['tagOverrides']>[string];

const tagOverride = obj<TagOverride>(
  {
    operation: oneOf(['UPSERT', 'REMOVE']),
    value: str,
  },
  {
    check: (o, path, ctx, raw) => {
      if (isSet(raw.operation) && o.operation === undefined) return; // bad operation, already reported
      const hasValue = typeof raw.value === 'string' && raw.value !== '';
      if ((o.operation ?? 'UPSERT') === 'UPSERT') {
        if (!hasValue) fail(ctx, [...path, 'value'], 'value must be set when operation is UPSERT (the default)');
        else {
          // Istio does not parse the expression; the proxy logs one that does not parse and skips it.
          const problem = checkCel(raw.value as string);
          if (problem !== undefined) warn(ctx, [...path, 'value'], `${problem}; the proxy skips this override (a standard label it names is then left out), and so does meshlet`);
        }
      } else if (isSet(raw.value)) {
        fail(ctx, [...path, 'value'], 'value may only be set when operation is UPSERT');
      }
    },
  },
);

const metricsOverride = obj<MetricsOverride>(
  {
    match: obj<NonNullable<MetricsOverride['match']>>(
      { metric: oneOf(METRICS), customMetric: nonEmpty, mode: oneOf(MODES) },
      { oneOf: [['metric', 'customMetric']] },
    ),
    disabled: bool,
    tagOverrides: map(tagOverride),
  },
  {
    check: (o, path, ctx) => {
      if (o.tagOverrides !== undefined && '' in o.tagOverrides) warn(ctx, [...path, 'tagOverrides'], 'tag name should not be empty');
    },
  },
);

const metrics = obj<TelemetryMetrics>({
  providers,
  overrides: list(metricsOverride),
  reportingInterval: durationStr({ minMs: 1 }),
});

const accessLogging = obj<TelemetryAccessLogging>({
  match: workloadMatch,
  providers,
  disabled: bool,
  // Istio parses the expression (it must be CEL), without type-checking it; meshlet evaluates it (src/telemetry/cel.ts).
  filter: obj<{ expression: string }>({ expression: req(strWith((e) => (e === '' ? 'must not be empty' : checkCel(e)))) }),
});

/** Validates a TelemetrySpec. */
export const telemetrySpec: Validator<TelemetrySpec> = obj<TelemetrySpec>(
  {
    ...scopeFields,
    tracing: list(tracing),
    metrics: list(metrics),
    accessLogging: list(accessLogging),
  },
  {
    check: (spec, path, ctx, raw) => {
      checkScope(raw, path, ctx);
      if ((spec.tracing?.length ?? 0) > 1) {
        warn(ctx, [...path, 'tracing'], 'Istio warns: "multiple tracing is not currently supported"; use one tracing entry');
      }
    },
  },
);
