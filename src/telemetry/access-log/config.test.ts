import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TelemetryAccessLogging } from '../../config/types/telemetry.ts';
import type { AppliedTelemetry } from '../select.ts';
import { type AccessLogProviderConfig, checkEnvoyFileAccessLog, resolveAccessLogs } from './config.ts';

const at = (level: AppliedTelemetry['level'], accessLogging: TelemetryAccessLogging[] | undefined, metricsOnly = false): AppliedTelemetry => ({
  ref: `${level === 'root' ? 'istio-system' : 'default'}/t-${level}`,
  level,
  spec: metricsOnly ? { metrics: [{ providers: [{ name: 'envoy' }] }] } : { accessLogging },
});

const envoy: TelemetryAccessLogging[] = [{ providers: [{ name: 'envoy' }] }];
const client: TelemetryAccessLogging[] = [{ match: { mode: 'CLIENT' }, providers: [{ name: 'envoy' }] }];
const clientDisabled: TelemetryAccessLogging[] = [{ match: { mode: 'CLIENT' }, providers: [{ name: 'envoy' }], disabled: true }];
const server: TelemetryAccessLogging[] = [{ match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }] }];
const serverDisabled: TelemetryAccessLogging[] = [{ match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }], disabled: true }];
const serverAndClient: TelemetryAccessLogging[] = [{ match: { mode: 'CLIENT_AND_SERVER' }, providers: [{ name: 'envoy' }] }];
const stackdriver: TelemetryAccessLogging[] = [{ providers: [{ name: 'stackdriver' }] }];
const empty: TelemetryAccessLogging[] = [{}];
const defaultJSON: TelemetryAccessLogging[] = [{ providers: [{ name: 'envoy-json' }] }];
const disabled: TelemetryAccessLogging[] = [{ disabled: true }];
const nonExistent: TelemetryAccessLogging[] = [{ providers: [{ name: 'custom-provider' }] }];
const multi: TelemetryAccessLogging[] = [{ providers: [{ name: 'envoy' }] }, { providers: [{ name: 'envoy-json' }] }];
const multiWithDisabled: TelemetryAccessLogging[] = [{ providers: [{ name: 'envoy' }] }, { providers: [{ name: 'envoy-json' }], disabled: true }];
const multiProviders: TelemetryAccessLogging[] = [{ providers: [{ name: 'envoy' }, { name: 'envoy-json' }] }, { providers: [{ name: 'envoy' }] }];
const multiFilters: TelemetryAccessLogging[] = [
  { match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }] },
  { match: { mode: 'CLIENT_AND_SERVER' }, providers: [{ name: 'envoy' }] },
];
const multiFiltersDisabled: TelemetryAccessLogging[] = [
  { match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }] },
  { match: { mode: 'CLIENT_AND_SERVER' }, providers: [{ name: 'envoy' }], disabled: true },
];
const serverAndClientDifferent: TelemetryAccessLogging[] = [
  { match: { mode: 'SERVER' }, providers: [{ name: 'envoy' }] },
  { match: { mode: 'CLIENT' }, providers: [{ name: 'envoy-json' }] },
];

const providers: AccessLogProviderConfig[] = [
  { name: 'envoy-json', envoyFileAccessLog: { path: '/dev/stdout', logFormat: { labels: {} } } },
  { name: 'stackdriver', stackdriver: {} } as AccessLogProviderConfig,
];

/**
 * pilot/pkg/model/telemetry_logging_test.go `TestAccessLogging` (sidecar cases): the providers
 * written, and whether MeshConfig's `accessLogFile` is the fallback (accesslog.go: no config for
 * the side, `len(cfgs) == 0`).
 */
const cases: [string, AppliedTelemetry[], 'CLIENT' | 'SERVER', string[], string[], boolean][] = [
  // name, telemetries, side, default providers, want, falls back to MeshConfig
  ['empty', [], 'CLIENT', [], [], true],
  ['prometheus-mesh', [at('root', undefined, true)], 'CLIENT', [], [], true],
  ['prometheus-namespace', [at('namespace', undefined, true)], 'CLIENT', [], [], true],
  ['default provider only', [], 'CLIENT', ['envoy'], ['envoy'], false],
  ['provider only', [at('root', envoy)], 'CLIENT', [], ['envoy'], false],
  ['client - outbound', [at('root', client)], 'CLIENT', [], ['envoy'], false],
  ['client - inbound', [at('root', client)], 'SERVER', [], [], true],
  ['client - disabled server', [at('root', client), at('namespace', serverDisabled)], 'CLIENT', [], ['envoy'], false],
  ['client - disabled client', [at('root', client), at('namespace', clientDisabled)], 'CLIENT', [], [], false],
  ['client - disabled - enabled', [at('root', client), at('namespace', clientDisabled), at('workload', client)], 'CLIENT', [], ['envoy'], false],
  ['server - inbound', [at('root', server)], 'SERVER', [], ['envoy'], false],
  ['server - outbound', [at('root', server)], 'CLIENT', [], [], true],
  ['server and client - inbound', [at('root', serverAndClient)], 'SERVER', [], ['envoy'], false],
  ['server and client - outbound', [at('root', serverAndClient)], 'CLIENT', [], ['envoy'], false],
  ['override default', [at('root', envoy)], 'CLIENT', ['stackdriver'], ['envoy'], false],
  ['override namespace', [at('root', envoy), at('namespace', defaultJSON)], 'CLIENT', [], ['envoy-json'], false],
  ['empty config inherits', [at('root', envoy), at('namespace', empty)], 'CLIENT', [], ['envoy'], false],
  ['stackdriver', [at('root', envoy), at('namespace', stackdriver)], 'CLIENT', [], [], true],
  ['default envoy JSON', [at('root', defaultJSON)], 'CLIENT', [], ['envoy-json'], false],
  ['disable config', [at('root', envoy), at('namespace', disabled)], 'CLIENT', [], [], false],
  ['disable default', [at('namespace', disabled)], 'CLIENT', ['envoy'], [], false],
  ['non existing', [at('namespace', nonExistent)], 'CLIENT', ['envoy'], [], true],
  ['server - multi filters', [at('root', multiFilters)], 'CLIENT', [], ['envoy'], false],
  ['server - multi filters disabled', [at('root', multiFiltersDisabled)], 'CLIENT', [], [], false],
  ['multi accesslogging', [at('root', envoy), at('namespace', multi)], 'CLIENT', [], ['envoy', 'envoy-json'], false],
  ['multi accesslogging with disabled', [at('root', envoy), at('namespace', multiWithDisabled)], 'CLIENT', [], ['envoy'], false],
  ['multi accesslogging - multi providers', [at('root', envoy), at('namespace', multiProviders)], 'CLIENT', [], ['envoy', 'envoy-json'], false],
  ['server and client different - inbound', [at('root', serverAndClientDifferent)], 'SERVER', [], ['envoy'], false],
  ['server and client different - outbound', [at('root', serverAndClientDifferent)], 'CLIENT', [], ['envoy-json'], false],
];

describe("which access logs a side writes (Istio's TestAccessLogging)", () => {
  for (const [name, applied, side, defaults, want, fallback] of cases) {
    it(name, () => {
      const off = resolveAccessLogs(applied, providers, { defaultProviders: defaults }, side);
      assert.deepEqual(
        off.logs.map((l) => l.provider),
        want,
      );
      const on = resolveAccessLogs(applied, providers, { defaultProviders: defaults, file: '/tmp/access.log' }, side);
      assert.deepEqual(
        on.logs.map((l) => l.provider),
        fallback ? ['(meshConfig)'] : want,
      );
    });
  }
});

describe('filters follow the last entry naming the provider (TestAccessLoggingWithFilter)', () => {
  const f = (expr: string, mode?: 'CLIENT' | 'SERVER'): TelemetryAccessLogging => ({ ...(mode === undefined ? {} : { match: { mode } }), providers: [{ name: 'envoy' }], filter: { expression: expr } });
  const rows: [string, AppliedTelemetry[], 'CLIENT' | 'SERVER', string | undefined][] = [
    ['one filter', [at('root', [f('response.code >= 400')])], 'CLIENT', 'response.code >= 400'],
    ['namespace overrides root', [at('root', [f('response.code >= 400')]), at('namespace', [f('response.code >= 500')])], 'CLIENT', 'response.code >= 500'],
    ['last entry wins', [at('root', [f('response.code >= 500'), f('response.code >= 400')])], 'CLIENT', 'response.code >= 400'],
    ['an entry without filter clears it', [at('root', [f('response.code >= 500')]), at('namespace', envoy)], 'CLIENT', undefined],
    ['per mode: client', [at('root', [f('response.code >= 500', 'CLIENT'), f('response.code >= 400', 'SERVER')])], 'CLIENT', 'response.code >= 500'],
    ['per mode: server', [at('root', [f('response.code >= 500', 'CLIENT'), f('response.code >= 400', 'SERVER')])], 'SERVER', 'response.code >= 400'],
  ];
  for (const [name, applied, side, want] of rows) {
    it(name, () => assert.deepEqual(resolveAccessLogs(applied, [], {}, side).logs.map((l) => l.filter), [want]));
  }
});

describe('formats and paths', () => {
  it('envoy without logFormat formats as MeshConfig says', () => {
    const [log] = resolveAccessLogs([at('root', envoy)], [], { encoding: 'JSON', format: '{"c":"%RESPONSE_CODE%"}' }, 'CLIENT').logs;
    assert.deepEqual(log, { provider: 'envoy', path: '/dev/stdout', format: { kind: 'json', labels: { c: '%RESPONSE_CODE%' } }, omitEmptyValues: false, filter: undefined });
  });
  it('a provider with its own text format and path', () => {
    const p: AccessLogProviderConfig[] = [{ name: 'custom', envoyFileAccessLog: { path: '/var/log/a.log', logFormat: { text: '%RESPONSE_CODE%' }, omitEmptyValues: true } }];
    const [log] = resolveAccessLogs([at('root', [{ providers: [{ name: 'Custom' }] }])], p, {}, 'SERVER').logs;
    assert.deepEqual(log, { provider: 'custom', path: '/var/log/a.log', format: { kind: 'text', text: '%RESPONSE_CODE%' }, omitEmptyValues: true, filter: undefined });
  });
  it('an unparsable MeshConfig JSON format falls back to the default, with a finding', () => {
    const r = resolveAccessLogs([], [], { file: '/dev/stdout', encoding: 'JSON', format: '{not json' }, 'CLIENT');
    assert.deepEqual(r.logs[0]?.format, { kind: 'json', labels: undefined });
    assert.match(r.findings[0] ?? '', /error parsing the JSON log format, the default JSON format is used/);
  });
  it('findings for providers that do not exist or that meshlet cannot write', () => {
    const p = [{ name: 'als', envoyTcpAls: { service: 'x', port: 1 } } as AccessLogProviderConfig];
    const r = resolveAccessLogs([at('root', [{ providers: [{ name: 'nope' }, { name: 'als' }] }])], p, {}, 'CLIENT');
    assert.deepEqual(r.logs, []);
    assert.equal(r.findings.length, 2);
    assert.match(r.findings.join('\n'), /provider "als" \(envoyTcpAls\) has nothing to log: meshlet proxies no TCP connections/);
    assert.match(r.findings.join('\n'), /names provider "nope", which is not among the mesh's extensionProviders/);
  });
});

describe('checkEnvoyFileAccessLog', () => {
  const rows: [unknown, RegExp | undefined][] = [
    [{ path: '/dev/stdout', logFormat: { text: '%RESPONSE_CODE%' } }, undefined],
    [{ logFormat: { labels: { a: '%REQ(:PATH)%' } }, omitEmptyValues: true }, undefined],
    ['x', /must be an object/],
    [{ pth: 'x' }, /unknown field "pth"/],
    [{ path: 1 }, /path must be a string/],
    [{ logFormat: { text: 'a', labels: {} } }, /only one of text and labels/],
    [{ logFormat: { labels: [] } }, /labels must be an object/],
    [{ logFormat: { text: '%BAD%' } }, /logFormat\.text: unknown command operator %BAD%/],
    [{ logFormat: { labels: { x: '%CEL(a.)%' } } }, /logFormat\.labels: labels\.x: invalid CEL expression/],
    [{ omitEmptyValues: 'yes' }, /omitEmptyValues must be a boolean/],
  ];
  for (const [p, why] of rows) {
    it(JSON.stringify(p), () => {
      const problems = checkEnvoyFileAccessLog(p);
      if (why === undefined) assert.deepEqual(problems, []);
      else assert.ok(problems.some((x) => why.test(x)), problems.join('; '));
    });
  }
});
