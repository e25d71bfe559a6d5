import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TelemetryTracing } from '../../config/types/telemetry.ts';
import type { AppliedTelemetry } from '../select.ts';
import { mergeTracing, type TracingOptions } from './config.ts';

const at = (ref: string, level: AppliedTelemetry['level'], tracing: TelemetryTracing[]): AppliedTelemetry => ({ ref, level, spec: { tracing } });

interface Row {
  name: string;
  applied: AppliedTelemetry[];
  options?: TracingOptions;
  client: { disabled: boolean; sampling: number; tags: string[]; istioTags?: boolean; provider?: string | undefined };
  server: { disabled: boolean; sampling: number; tags: string[]; istioTags?: boolean; provider?: string | undefined };
  warns?: RegExp;
}

const rows: Row[] = [
  { name: 'no Telemetry: on, at Istio default 1%', applied: [], client: { disabled: false, sampling: 1, tags: [] }, server: { disabled: false, sampling: 1, tags: [] } },
  { name: 'no Telemetry, the mesh option says 10%', applied: [], options: { samplingPercentage: 10 }, client: { disabled: false, sampling: 10, tags: [] }, server: { disabled: false, sampling: 10, tags: [] } },
  { name: 'no Telemetry, enableTracing off', applied: [], options: { enabled: false }, client: { disabled: true, sampling: 1, tags: [] }, server: { disabled: true, sampling: 1, tags: [] } },
  {
    name: 'root sets 10%, the namespace 50%: the later wins',
    applied: [at('istio-system/mesh', 'root', [{ randomSamplingPercentage: 10 }]), at('ns/ns', 'namespace', [{ randomSamplingPercentage: 50 }])],
    client: { disabled: false, sampling: 50, tags: [] },
    server: { disabled: false, sampling: 50, tags: [] },
  },
  {
    name: 'a Telemetry without sampling keeps the mesh default',
    applied: [at('ns/ns', 'namespace', [{ customTags: { a: { literal: { value: 'x' } } } }])],
    options: { samplingPercentage: 5 },
    client: { disabled: false, sampling: 5, tags: ['a'] },
    server: { disabled: false, sampling: 5, tags: ['a'] },
  },
  {
    name: 'customTags are replaced wholesale (no merge of tag maps)',
    applied: [at('istio-system/mesh', 'root', [{ customTags: { a: { literal: { value: 'x' } }, b: { literal: { value: 'y' } } } }]), at('ns/w', 'workload', [{ customTags: { c: { header: { name: 'x-c' } } } }])],
    client: { disabled: false, sampling: 1, tags: ['c'] },
    server: { disabled: false, sampling: 1, tags: ['c'] },
  },
  {
    name: 'match.mode SERVER: only the server side changes',
    applied: [at('ns/ns', 'namespace', [{ match: { mode: 'SERVER' }, disableSpanReporting: true, randomSamplingPercentage: 30 }])],
    client: { disabled: false, sampling: 1, tags: [] },
    server: { disabled: true, sampling: 30, tags: [] },
  },
  {
    name: 'match.mode CLIENT, then CLIENT_AND_SERVER re-enables both',
    applied: [at('istio-system/mesh', 'root', [{ match: { mode: 'CLIENT' }, disableSpanReporting: true }]), at('ns/w', 'workload', [{ disableSpanReporting: false }])],
    client: { disabled: false, sampling: 1, tags: [] },
    server: { disabled: false, sampling: 1, tags: [] },
  },
  {
    name: 'enableIstioTags: false',
    applied: [at('ns/ns', 'namespace', [{ enableIstioTags: false }])],
    client: { disabled: false, sampling: 1, tags: [], istioTags: false },
    server: { disabled: false, sampling: 1, tags: [], istioTags: false },
  },
  {
    name: 'a provider the mesh does not know disables tracing for its mode (Istio: provider lookup failed)',
    applied: [at('ns/ns', 'namespace', [{ match: { mode: 'CLIENT' }, providers: [{ name: 'zipkin' }] }])],
    options: { providers: ['otel'] },
    client: { disabled: true, sampling: 1, tags: [], provider: undefined },
    server: { disabled: false, sampling: 1, tags: [], provider: 'otel' },
    warns: /tracing provider "zipkin" is not one of telemetry\.tracing\.providers \(otel\)/,
  },
  {
    name: 'any provider name means the SDK when the mesh lists none',
    applied: [at('ns/ns', 'namespace', [{ providers: [{ name: 'jaeger' }] }])],
    client: { disabled: false, sampling: 1, tags: [], provider: 'jaeger' },
    server: { disabled: false, sampling: 1, tags: [], provider: 'jaeger' },
  },
  {
    name: 'ProxyConfig-style custom tags are used when no Telemetry sets any',
    applied: [at('ns/ns', 'namespace', [{ randomSamplingPercentage: 100 }])],
    options: { customTags: { team: { literal: { value: 'a' } } } },
    client: { disabled: false, sampling: 100, tags: ['team'] },
    server: { disabled: false, sampling: 100, tags: ['team'] },
  },
];

describe('mergeTracing', () => {
  for (const row of rows) {
    it(row.name, () => {
      const warnings: string[] = [];
      const c = mergeTracing(row.applied, row.options ?? {}, (m) => warnings.push(m));
      for (const side of ['client', 'server'] as const) {
        const got = c[side];
        const want = row[side];
        assert.equal(got.disabled, want.disabled, `${side}.disabled`);
        assert.equal(got.samplingPercentage, want.sampling, `${side}.samplingPercentage`);
        assert.deepEqual(Object.keys(got.customTags).sort(), want.tags, `${side}.customTags`);
        if (want.istioTags !== undefined) assert.equal(got.enableIstioTags, want.istioTags);
        if ('provider' in want) assert.equal(got.provider, want.provider, `${side}.provider`);
      }
      if (row.warns === undefined) assert.deepEqual(warnings, []);
      else assert.match(warnings.join('\n'), row.warns);
    });
  }
});
