/**
 * `envoyOtelAls` providers: what istiod makes of one (pilot/pkg/model/telemetry_logging_test.go
 * for the OTel provider: default body format, labels as attributes, log name) and Istio's
 * validation (pkg/config/validation/agent/extensionprovider_test.go
 * TestValidateExtensionProviderEnvoyOtelAls), plus the formats checked with the file logger's parser.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppliedTelemetry } from '../select.ts';
import { resolveAccessLogs } from './config.ts';
import { ISTIO_TEXT_FORMAT } from './format.ts';
import { checkEnvoyOtelAls, otelTarget, resolveOtelLog } from './otel-config.ts';

const root = (accessLogging: unknown[]): AppliedTelemetry => ({ ref: 'istio-system/t', level: 'root', spec: { accessLogging } }) as AppliedTelemetry;

describe("istiod's OpenTelemetry access log config", () => {
  it('defaults: Istio text format as the body, no attributes, log name otel_envoy_accesslog', () => {
    assert.deepEqual(resolveOtelLog({ service: 'otel.istio-system.svc.cluster.local', port: 4317 }), {
      service: 'otel.istio-system.svc.cluster.local',
      port: 4317,
      logName: 'otel_envoy_accesslog',
      text: ISTIO_TEXT_FORMAT,
      labels: [],
    });
    // An empty text is the default too (`provider.LogFormat.Text != ""`).
    assert.equal(resolveOtelLog({ service: 's', port: 1, logFormat: { text: '' } }).text, ISTIO_TEXT_FORMAT);
  });
  it('logFormat: text as it is (no newline added), labels sorted by name, a non-string label as ""', () => {
    const r = resolveOtelLog({ service: 's', port: 1, logName: 'my-log', logFormat: { text: '%RESPONSE_CODE%', labels: { z: '%REQ(:PATH)%', a: 'x', n: 5 } } });
    assert.equal(r.text, '%RESPONSE_CODE%');
    assert.equal(r.logName, 'my-log');
    assert.deepEqual(r.labels, [
      ['a', 'x'],
      ['n', ''],
      ['z', '%REQ(:PATH)%'],
    ]);
  });
  it('TestBuildOpenTelemetryAccessLogConfig "with attrs": protocol and a CEL host, attributes host then protocol', () => {
    const r = resolveOtelLog({ service: 'otel-collector.monitoring.svc.cluster.local', port: 55680, logFormat: { labels: { protocol: '%PROTOCOL%', host: '%CEL(request.host)%' } } });
    assert.equal(r.text, ISTIO_TEXT_FORMAT);
    assert.deepEqual(r.labels, [
      ['host', '%CEL(request.host)%'],
      ['protocol', '%PROTOCOL%'],
    ]);
    assert.equal(otelTarget(r), 'otel-collector.monitoring.svc.cluster.local:55680');
    assert.deepEqual(checkEnvoyOtelAls({ service: r.service, port: r.port, logFormat: { labels: { protocol: '%PROTOCOL%', host: '%CEL(request.host)%' } } }), []);
  });
  it('the collector target: namespace/ dropped, IPv6 bracketed', () => {
    assert.equal(otelTarget({ service: 'observability/otel.observability.svc.cluster.local', port: 4317 }), 'otel.observability.svc.cluster.local:4317');
    assert.equal(otelTarget({ service: '::1', port: 4317 }), '[::1]:4317');
  });
  it('a Telemetry naming the provider: a log for both sides, no "not supported" finding; disabled: none', () => {
    const p = [{ name: 'otel', envoyOtelAls: { service: 'otel.ns.svc', port: 4317 } }];
    for (const mode of ['CLIENT', 'SERVER'] as const) {
      const r = resolveAccessLogs([root([{ providers: [{ name: 'otel' }], filter: { expression: 'response.code >= 400' } }])], p, {}, mode);
      assert.deepEqual(r.findings, []);
      assert.equal(r.logs.length, 1);
      assert.equal(r.logs[0]?.otel?.service, 'otel.ns.svc');
      assert.equal(r.logs[0]?.filter, 'response.code >= 400');
    }
    const off = resolveAccessLogs([root([{ providers: [{ name: 'otel' }], disabled: true }])], p, { file: '/dev/stdout' }, 'CLIENT');
    assert.deepEqual(off.logs, [], 'a disabled OTel provider is still the configured provider: no MeshConfig fallback');
  });
  it('defaultProviders.accessLogging naming it', () => {
    const r = resolveAccessLogs([root([{}])], [{ name: 'otel', envoyOtelAls: { service: 'o', port: 4317 } }], { defaultProviders: ['otel'] }, 'SERVER');
    assert.equal(r.logs[0]?.provider, 'otel');
  });
});

describe('checkEnvoyOtelAls (TestValidateExtensionProviderEnvoyOtelAls)', () => {
  const rows: [string, unknown, RegExp | undefined][] = [
    ['otel normal', { service: 'otel.istio-syste.svc', port: 4000 }, undefined],
    ['otel service with namespace', { service: 'namespace/otel.istio-syste.svc', port: 4000 }, undefined],
    ['an IP address', { service: '10.0.0.1', port: 4317 }, undefined],
    ['otel service with invalid namespace', { service: 'name/space/otel.istio-syste.svc', port: 4000 }, /invalid service "name\/space\/otel\.istio-syste\.svc"/],
    ['otel service with port', { service: 'otel.istio-syste.svc:4000', port: 4000 }, /not a host name \(.*\) or IP address \(the port goes in `port`\)/],
    // ValidateFQDN / ValidateDNS1123Labels / ValidateNamespaceSlashWildcardHostname, as Istio reads them.
    ['a trailing dot', { service: 'otel.istio-system.svc.cluster.local.', port: 4317 }, undefined],
    ['upper-case letters (IsDNS1123Label takes them)', { service: 'OTEL.istio-system.svc', port: 4317 }, undefined],
    ['a single label', { service: 'otel', port: 4317 }, undefined],
    ['an IPv6 address', { service: '::1', port: 4317 }, undefined],
    ['an all-numeric top-level label', { service: 'otel.123', port: 4317 }, /top level domain "123" cannot be all-numeric/],
    ['not an IPv4 address either', { service: '999.1.1.1', port: 4317 }, /invalid service "999\.1\.1\.1"/],
    ['an empty label', { service: 'otel..svc', port: 4317 }, /label "" invalid/],
    ['namespace/host, any namespace', { service: '*/otel.istio-system.svc', port: 4317 }, undefined],
    ['namespace/host, ~namespace', { service: '~observability/otel.istio-system.svc', port: 4317 }, undefined],
    ['namespace/host, a wildcard host', { service: 'observability/*.istio-system.svc', port: 4317 }, undefined],
    ['namespace/host, a short host', { service: 'observability/otel', port: 4317 }, /short names \(non FQDN\) are not allowed/],
    ['namespace/host, a partial wildcard', { service: 'observability/ot*el.svc', port: 4317 }, /label "ot\*el" invalid/],
    ['namespace/host, an invalid namespace', { service: 'Bad_ns/otel.svc', port: 4317 }, /invalid namespace "Bad_ns"/],
    ['namespace/host, an empty namespace', { service: '/otel.svc', port: 4317 }, /cannot be empty/],
    ['otel missing port', { service: 'otel.istio-syste.svc' }, /port must be in the range \[1, 65535\], found: 0/],
    ['no service', { port: 4317 }, /service must not be empty/],
    ['an unknown field', { service: 'o', port: 1, logformat: {} }, /unknown field "logformat"/],
    ['a bad operator in text', { service: 'o', port: 1, logFormat: { text: '%BAD%' } }, /logFormat\.text: unknown command operator %BAD%/],
    ['a bad operator in a label', { service: 'o', port: 1, logFormat: { labels: { code: '%RESPONSE_CODE%', x: '%REQ(%' } } }, /logFormat\.labels\.x: /],
    ['labels not an object', { service: 'o', port: 1, logFormat: { labels: ['a'] } }, /logFormat\.labels must be an object/],
    ['Istio task labels', { service: 'o', port: 1, logFormat: { labels: { 'k8s.namespace.name': '%ENVIRONMENT(POD_NAMESPACE)%', 'k8s.pod.name': '%ENVIRONMENT(POD_NAME)%', my_attr: '%REQ(USER-AGENT)%' } } }, undefined],
  ];
  for (const [name, p, why] of rows) {
    it(name, () => {
      const problems = checkEnvoyOtelAls(p);
      if (why === undefined) assert.deepEqual(problems, []);
      else assert.ok(problems.some((x) => why.test(x)), problems.join('; '));
    });
  }
});
