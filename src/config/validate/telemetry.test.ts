import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';

const tel = (spec: string, namespace = 'foo') => doc('telemetry.istio.io/v1', 'Telemetry', 'x', spec, namespace);
const indent = (text: string, by: string) => text.trim().split('\n').map((l) => `${by}${l}`).join('\n');
/** A Telemetry with one tracing entry holding these fields. */
const tracing = (fields: string) => tel(`tracing:\n- ${indent(fields, '  ').trimStart()}`);
/** A Telemetry with one metrics entry holding these fields. */
const metrics = (fields: string) => tel(`metrics:\n- ${indent(fields, '  ').trimStart()}`);
/** A Telemetry with one metrics override holding these fields. */
const override = (fields: string) => tel(`metrics:\n- providers:\n  - name: prometheus\n  overrides:\n  - ${indent(fields, '    ').trimStart()}`);
/** A Telemetry with one access-logging entry holding these fields. */
const logging = (fields: string) => tel(`accessLogging:\n- ${indent(fields, '  ').trimStart()}`);

describe('Telemetry validation', () => {
  const valid: { name: string; yaml: string }[] = [
    { name: 'empty spec', yaml: tel('{}') },
    { name: 'mesh-wide 100% sampling (Istio task page)', yaml: tel('tracing:\n- randomSamplingPercentage: 100.00', 'istio-system') },
    {
      name: 'every tracing field',
      yaml: tracing(`
match:
  mode: SERVER
providers:
- name: otel-tracing
randomSamplingPercentage: 0.01
disableSpanReporting: false
customTags:
  my_tag_header:
    header:
      name: x-custom
      defaultValue: unknown
  my_tag_literal:
    literal:
      value: static
  my_tag_env:
    environment:
      name: POD_NAME
enableIstioTags: true
disableContextPropagation: false`),
    },
    { name: 'sampling 0', yaml: tracing('randomSamplingPercentage: 0') },
    {
      name: 'metrics overrides (Istio task page, REMOVE and disable)',
      yaml: tel(`
selector:
  matchLabels:
    app: reviews
metrics:
- providers:
  - name: prometheus
  overrides:
  - match:
      metric: REQUEST_COUNT
      mode: CLIENT_AND_SERVER
    tagOverrides:
      request_protocol:
        operation: REMOVE
  - match:
      metric: ALL_METRICS
    disabled: true
  - match:
      customMetric: my_metric
  reportingInterval: 10s`),
    },
    { name: 'access logging (Istio task page)', yaml: logging('providers:\n- name: envoy\nmatch:\n  mode: CLIENT\ndisabled: false') },
    { name: 'disabled access logging', yaml: logging('disabled: true') },
    { name: 'v1alpha1', yaml: doc('telemetry.istio.io/v1alpha1', 'Telemetry', 'x', 'accessLogging:\n- providers:\n  - name: envoy') },
  ];
  for (const c of valid) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('keeps the typed spec as written', () => {
    const { resources } = validateYaml(tracing('providers:\n- name: zipkin\nrandomSamplingPercentage: 12.5\ncustomTags:\n  t:\n    literal:\n      value: v'));
    assert.deepEqual(resources[0]?.spec, { tracing: [{ providers: [{ name: 'zipkin' }], randomSamplingPercentage: 12.5, customTags: { t: { literal: { value: 'v' } } } }] });
  });

  const invalid: { name: string; yaml: string; error: RegExp }[] = [
    // scope
    { name: 'selector and targetRefs together', yaml: tel('selector:\n  matchLabels:\n    app: a\ntargetRefs:\n- kind: Gateway\n  name: gw'), error: /spec: only one of selector, targetRef, targetRefs may be set, got selector and targetRefs/ },
    { name: 'an access-log filter that is not CEL (Istio parses it)', yaml: tel('accessLogging:\n- providers: [{name: envoy}]\n  filter: {expression: ")++++"}'), error: /accessLogging\[0\]\.filter\.expression: must be a valid CEL expression/ },
    { name: 'a targetRef to a wrong kind (Istio)', yaml: tel('targetRef:\n  group: gateway.networking.k8s.io\n  kind: wrong-kind\n  name: foo'), error: /spec\.targetRef: targetRef must be to one of .*; got gateway\.networking\.k8s\.io\/wrong-kind/ },
    { name: 'a targetRef with a namespace (Istio)', yaml: tel('targetRef:\n  group: gateway.networking.k8s.io\n  kind: Gateway\n  name: foo\n  namespace: bar'), error: /spec\.targetRef\.namespace: must not be set/ },
    { name: 'unknown top-level field', yaml: tel('tracings: []'), error: /spec\.tracings: unknown field "tracings" \(did you mean "tracing"\?\)/ },
    // tracing
    { name: 'tracing not a list', yaml: tel('tracing:\n  randomSamplingPercentage: 1'), error: /spec\.tracing: must be a list/ },
    { name: 'unknown tracing mode', yaml: tracing('match:\n  mode: BOTH'), error: /spec\.tracing\[0\]\.match\.mode: must be one of CLIENT_AND_SERVER, CLIENT, SERVER/ },
    { name: 'provider without name', yaml: tracing('providers:\n- {}'), error: /spec\.tracing\[0\]\.providers\[0\]\.name: is required/ },
    { name: 'provider with an empty name', yaml: tracing('providers:\n- name: ""'), error: /spec\.tracing\[0\]\.providers\[0\]\.name: must not be empty/ },
    { name: 'provider as a string', yaml: tracing('providers: [zipkin]'), error: /tracing\[0\]\.providers\[0\]: must be an object/ },
    { name: 'sampling above 100', yaml: tracing('randomSamplingPercentage: 101'), error: /spec\.tracing\[0\]\.randomSamplingPercentage: must be <= 100, got 101/ },
    { name: 'negative sampling', yaml: tracing('randomSamplingPercentage: -1'), error: /randomSamplingPercentage: must be >= 0, got -1/ },
    { name: 'sampling as a string', yaml: tracing('randomSamplingPercentage: "50%"'), error: /randomSamplingPercentage: must be a number/ },
    { name: 'disableSpanReporting not a boolean', yaml: tracing('disableSpanReporting: "true"'), error: /disableSpanReporting: must be true or false/ },
    { name: 'enableIstioTags not a boolean', yaml: tracing('enableIstioTags: 1'), error: /enableIstioTags: must be true or false/ },
    { name: 'disableContextPropagation not a boolean', yaml: tracing('disableContextPropagation: yes'), error: /disableContextPropagation: must be true or false/ },
    { name: 'custom tag with no type', yaml: tracing('customTags:\n  t: {}'), error: /spec\.tracing\[0\]\.customTags\.t: one of literal, environment, header, formatter is required/ },
    { name: 'custom tag with two types', yaml: tracing('customTags:\n  t:\n    literal:\n      value: a\n    environment:\n      name: B'), error: /customTags\.t: only one of literal, environment, header, formatter may be set, got literal and environment/ },
    { name: 'empty literal', yaml: tracing('customTags:\n  t:\n    literal:\n      value: ""'), error: /customTags\.t\.literal\.value: must not be empty/ },
    { name: 'literal without value', yaml: tracing('customTags:\n  t:\n    literal: {}'), error: /customTags\.t\.literal\.value: is required/ },
    { name: 'environment without name', yaml: tracing('customTags:\n  t:\n    environment:\n      defaultValue: x'), error: /customTags\.t\.environment\.name: is required/ },
    { name: 'header with an empty name', yaml: tracing('customTags:\n  t:\n    header:\n      name: ""'), error: /customTags\.t\.header\.name: must not be empty/ },
    { name: 'header defaultValue not a string', yaml: tracing('customTags:\n  t:\n    header:\n      name: x\n      defaultValue: [a]'), error: /customTags\.t\.header\.defaultValue: must be a string/ },
    { name: 'empty tag name', yaml: tracing('customTags:\n  "":\n    literal:\n      value: a'), error: /customTags\[""\]: tag name must not be empty/ },
    { name: 'empty formatter value', yaml: tracing('customTags:\n  t:\n    formatter:\n      value: ""'), error: /customTags\.t\.formatter\.value: must not be empty/ },
    { name: 'useRequestIdForTraceSampling not a boolean', yaml: tracing('useRequestIdForTraceSampling: "no"'), error: /useRequestIdForTraceSampling: must be true or false/ },
    // metrics
    { name: 'unknown metric', yaml: override('match:\n  metric: REQUEST_TOTAL'), error: /spec\.metrics\[0\]\.overrides\[0\]\.match\.metric: must be one of ALL_METRICS, REQUEST_COUNT/ },
    { name: 'metric and customMetric together', yaml: override('match:\n  metric: REQUEST_COUNT\n  customMetric: x'), error: /overrides\[0\]\.match: only one of metric, customMetric may be set, got metric and customMetric/ },
    { name: 'empty customMetric', yaml: override('match:\n  customMetric: ""'), error: /overrides\[0\]\.match\.customMetric: must not be empty/ },
    { name: 'unknown override mode', yaml: override('match:\n  mode: ALL'), error: /overrides\[0\]\.match\.mode: must be one of CLIENT_AND_SERVER, CLIENT, SERVER/ },
    { name: 'disabled not a boolean', yaml: override('disabled: "true"'), error: /overrides\[0\]\.disabled: must be true or false/ },
    { name: 'unknown tag operation', yaml: override('tagOverrides:\n  a:\n    operation: DELETE'), error: /tagOverrides\.a\.operation: must be one of UPSERT, REMOVE/ },
    { name: 'UPSERT without value', yaml: override('tagOverrides:\n  a:\n    operation: UPSERT'), error: /tagOverrides\.a\.value: value must be set when operation is UPSERT/ },
    { name: 'default operation without value', yaml: override('tagOverrides:\n  a: {}'), error: /tagOverrides\.a\.value: value must be set when operation is UPSERT \(the default\)/ },
    { name: 'UPSERT with an empty value', yaml: override('tagOverrides:\n  a:\n    value: ""'), error: /tagOverrides\.a\.value: value must be set when operation is UPSERT/ },
    { name: 'REMOVE with a value', yaml: override('tagOverrides:\n  a:\n    operation: REMOVE\n    value: "x"'), error: /tagOverrides\.a\.value: value may only be set when operation is UPSERT/ },
    { name: 'tag override null', yaml: override('tagOverrides:\n  a:'), error: /tagOverrides\.a: has no value \(null\)/ },
    { name: 'overrides not a list', yaml: metrics('overrides:\n  match: {}'), error: /spec\.metrics\[0\]\.overrides: must be a list/ },
    { name: 'metrics provider with an empty name', yaml: metrics('providers:\n- name: ""'), error: /spec\.metrics\[0\]\.providers\[0\]\.name: must not be empty/ },
    { name: 'reportingInterval below 1ms', yaml: metrics('reportingInterval: 0s'), error: /spec\.metrics\[0\]\.reportingInterval: duration must be >= 1ms, got "0s"/ },
    { name: 'reportingInterval not a duration', yaml: metrics('reportingInterval: 10'), error: /reportingInterval: must be a string/ },
    { name: 'reportingInterval with a bad unit', yaml: metrics('reportingInterval: 10sec'), error: /reportingInterval: invalid duration "10sec"/ },
    // access logging
    { name: 'unknown access-log mode', yaml: logging('match:\n  mode: INBOUND'), error: /spec\.accessLogging\[0\]\.match\.mode: must be one of/ },
    { name: 'access-log provider without name', yaml: logging('providers:\n- {}'), error: /spec\.accessLogging\[0\]\.providers\[0\]\.name: is required/ },
    { name: 'access-log disabled not a boolean', yaml: logging('disabled: 0'), error: /accessLogging\[0\]\.disabled: must be true or false/ },
    { name: 'empty filter expression', yaml: logging('filter:\n  expression: ""'), error: /spec\.accessLogging\[0\]\.filter\.expression: must not be empty/ },
    { name: 'filter without expression', yaml: logging('filter: {}'), error: /spec\.accessLogging\[0\]\.filter\.expression: is required/ },
    { name: 'filter as a string', yaml: logging('filter: "response.code >= 400"'), error: /spec\.accessLogging\[0\]\.filter: must be an object/ },
  ];
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0);
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }

  const warned: { name: string; yaml: string; warning: RegExp }[] = [
    {
      name: 'more than one tracing provider',
      yaml: tracing('providers:\n- name: zipkin\n- name: otel'),
      warning: /spec\.tracing\[0\]\.providers: only one provider per tracing entry is supported \(Istio: "multiple providers is not currently supported"\); "zipkin" is used, "otel" ignored/,
    },
    { name: 'more than one tracing entry', yaml: tel('tracing:\n- providers:\n  - name: a\n- providers:\n  - name: b'), warning: /spec\.tracing: Istio warns: "multiple tracing is not currently supported"/ },
    { name: 'useRequestIdForTraceSampling', yaml: tracing('useRequestIdForTraceSampling: true'), warning: /not supported by meshlet: spec\.tracing\[0\]\.useRequestIdForTraceSampling/ },
    {
      name: 'a tag override value that does not parse as CEL',
      yaml: override('match:\n  metric: REQUEST_COUNT\ntagOverrides:\n  request_host:\n    value: "request.host +"'),
      warning: /tagOverrides\.request_host\.value: must be a valid CEL expression: .*; the proxy skips this override \(a standard label it names is then left out\), and so does meshlet/,
    },
    { name: 'an empty tag override name', yaml: override('tagOverrides:\n  "":\n    operation: REMOVE'), warning: /overrides\[0\]\.tagOverrides: tag name should not be empty/ },
    { name: 'targetRef', yaml: tel('targetRef:\n  group: gateway.networking.k8s.io\n  kind: Gateway\n  name: gw'), warning: /not supported by meshlet: spec\.targetRef; meshlet runs inside workloads; use selector/ },
    { name: 'a selector without labels', yaml: tel('selector: {}'), warning: /spec\.selector: selector has no matchLabels/ },
  ];
  it('accepts CEL tag override values and formatter custom tags without a warning (meshlet applies them)', () => {
    for (const yaml of [
      override('match:\n  metric: REQUEST_COUNT\ntagOverrides:\n  request_host:\n    value: "request.host"\n  destination_port:\n    value: "string(destination.port)"'),
      tracing('customTags:\n  t:\n    formatter:\n      value: "%REQ(:PATH)%"'),
    ]) {
      const { errors, warnings, resources } = validateYaml(yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.deepEqual(warnings, []);
    }
  });
  it('accepts an access-log filter (CEL) without a warning (meshlet evaluates it)', () => {
    const { errors, warnings, resources } = validateYaml(logging('providers:\n- name: envoy\nfilter:\n  expression: response.code >= 400'));
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 1);
    assert.deepEqual(warnings.filter((w) => /filter/.test(w)), []);
  });
  for (const c of warned) {
    it(`warns about ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.equal(resources.length, 1);
      assert.ok(warnings.some((w) => c.warning.test(w)), `expected ${c.warning} in:\n${warnings.join('\n')}`);
    });
  }
});
