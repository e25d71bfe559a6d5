import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from './load-config.ts';

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
