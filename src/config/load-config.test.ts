import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { IssueList } from './issues.ts';
import { loadConfig } from './load-config.ts';
import { parseText } from './load.ts';

const SE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
`;

test('resources returned by loadConfig can be passed back in, mixed with new objects, keeping their file and line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-load-'));
  try {
    await writeFile(join(dir, 'se.yaml'), SE);
    const first = await loadConfig(dir);
    assert.equal(first.ok, true, first.issues.all.join('\n'));
    const extra = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'svc' },
      spec: { hosts: ['svc'], http: [{ route: [{ destination: { host: 'svc' } }], timeout: 'soon' }] },
    };
    const again = await loadConfig([...first.resources, extra]);
    assert.equal(again.ok, false);
    const errors = again.issues.all.filter((i) => i.level === 'error').map(String);
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0] as string, /<inline>\[1\].*timeout/);
    const ok = await loadConfig([...first.resources]);
    assert.equal(ok.ok, true, ok.issues.all.join('\n'));
    assert.equal(ok.resources[0]?.source.file, join(dir, 'se.yaml'));
    assert.equal(ok.resources[0]?.source.line, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ParseCache: unchanged files are not parsed again, changed and broken files are, deleted files are forgotten', async () => {
  const { ParseCache, readSources } = await import('./load.ts');
  const { IssueList } = await import('./issues.ts');
  const { unlink } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-cache-'));
  try {
    await writeFile(join(dir, 'a.yaml'), SE);
    await writeFile(join(dir, 'b.yaml'), SE.replace('name: svc', 'name: svc2'));
    const cache = new ParseCache();
    const first = await readSources([dir], new IssueList(), {}, cache);
    const again = await readSources([dir], new IssueList(), {}, cache);
    assert.equal(again[0], first[0], 'a.yaml unchanged: the same document object');
    assert.equal(again[1], first[1]);
    await writeFile(join(dir, 'b.yaml'), SE.replace('name: svc', 'name: svc3'));
    const changed = await readSources([dir], new IssueList(), {}, cache);
    assert.equal(changed[0], first[0]);
    assert.notEqual(changed[1], first[1], 'b.yaml changed: parsed again');
    assert.equal((changed[1]!.value as { metadata: { name: string } }).metadata.name, 'svc3');
    await writeFile(join(dir, 'b.yaml'), 'kind: [unclosed');
    for (let i = 0; i < 2; i++) {
      const issues = new IssueList();
      await readSources([dir], issues, {}, cache);
      assert.ok(issues.hasErrors, `a broken file reports its error on every load (load ${i + 1})`);
    }
    await unlink(join(dir, 'b.yaml'));
    const after = await loadConfig(dir, { parseCache: cache });
    assert.equal(after.ok, true);
    assert.deepEqual(after.resources.map((r) => r.metadata.name), ['svc']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('YAML flow lists read ":" as Kubernetes does: [1.2.3.4, 2001:db8::] is two addresses (Istio testdata serviceentry-valid.yaml)', async () => {
  const rows: [string, unknown][] = [
    ['a: [1.2.3.4, 001:db8::]', { a: ['1.2.3.4', '001:db8::'] }],
    ['a: [001:db8::, x]', { a: ['001:db8::', 'x'] }],
    ['a: [k:, z]', { a: ['k:', 'z'] }],
    // A ":" before a space, a quoted key or braces still make a map, as in go-yaml.
    ['a: [k: v]', { a: [{ k: 'v' }] }],
    ['a: [k: ]', { a: [{ k: null }] }],
    ['a: ["k": ]', { a: [{ k: null }] }],
    ['a: [{k: }]', { a: [{ k: null }] }],
    ['a:\n- 001:db8::', { a: [{ '001:db8:': null }] }],
  ];
  for (const [text, want] of rows) {
    const issues = new IssueList();
    assert.deepEqual(parseText(text, 't.yaml', issues)[0]?.value, want, text);
    assert.deepEqual(issues.all, []);
  }
  const { ok, issues } = await loadConfig([
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'v6' }, spec: { hosts: ['example.com'], addresses: ['1.2.3.4', '001:db8::'], resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '1.1.1.1' }] } },
  ]);
  assert.equal(ok, true, issues.all.join('\n'));
});

test('the security and Telemetry kinds are applied: no not-applied notice (MESHLET0003) for them', async () => {
  const sec = (kind: string, name: string, spec: object) => ({ apiVersion: 'security.istio.io/v1', kind, metadata: { name }, spec });
  const { ok, issues } = await loadConfig([
    sec('AuthorizationPolicy', 'a', { rules: [{}] }),
    sec('AuthorizationPolicy', 'b', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['8080'] } }] }] }),
    sec('PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } }),
    { apiVersion: 'telemetry.istio.io/v1', kind: 'Telemetry', metadata: { name: 'mesh-default' }, spec: { accessLogging: [{ providers: [{ name: 'envoy' }] }] } },
    { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'svc' }, spec: { hosts: ['svc'], ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC', endpoints: [{ address: '1.1.1.1' }] } },
  ]);
  assert.equal(ok, true, issues.all.join('\n'));
  // AuthorizationPolicy and PeerAuthentication are enforced by the server side, Telemetry by the telemetry subscribers.
  assert.deepEqual(issues.all.filter((i) => i.code === 'MESHLET0003').map((i) => `${i.level} ${i.resource}: ${i.message}`), []);
});

test('one object is read too: a resource, or the List that JSON.parse of `kubectl get … -o json` gives (not a TypeError)', async () => {
  const vs = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'svc', namespace: 'default' }, spec: { hosts: ['svc'], http: [{ route: [{ destination: { host: 'svc' } }] }] } };
  const se = { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'svc', namespace: 'default', managedFields: [{ manager: 'kubectl' }] }, spec: { hosts: ['svc.default.svc.cluster.local'], resolution: 'STATIC', ports: [{ number: 80, name: 'http', protocol: 'HTTP' }], endpoints: [{ address: '127.0.0.1' }] }, status: { validationMessages: [] } };
  const list = await loadConfig({ apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '' }, items: [se, vs] });
  assert.equal(list.ok, true, list.issues.all.join('\n'));
  assert.deepEqual(list.resources.map((r) => r.ref), ['ServiceEntry default/svc', 'VirtualService default/svc']);
  const one = await loadConfig(se);
  assert.deepEqual(one.resources.map((r) => r.ref), ['ServiceEntry default/svc']);
});
