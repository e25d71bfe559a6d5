/**
 * `meshlet explain` for an IPv6 address outside the mesh (ALLOW_ANY's PassthroughCluster): the
 * destination is printed as Envoy prints a socket address, `[::1]:8080`
 * (source/common/network/address_impl.cc `Ipv6Instance::asString`: the address in brackets, then
 * the port), while the host itself — the document's `host` and the "not in the registry" line — is
 * the address `::1`, as the registry holds addresses, without the brackets of the URL form.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-explain-v6-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CONFIG = join(dir, 'mesh.yaml');
writeFileSync(
  CONFIG,
  `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec: {hosts: [a.internal], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}], endpoints: [{address: 10.0.0.1}]}
`,
);

describe('meshlet explain: an IPv6 passthrough host', () => {
  it('text: the destination as [::1]:8080, the host not in the registry as ::1', () => {
    const r = meshlet(['explain', CONFIG, '--service', 'client', 'http://[::1]:8080/x']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\n {2}\[::1\]:8080 {2}100% {2}PassthroughCluster\n/);
    assert.match(r.stdout, /\nNot in mesh: +::1 is not in the registry/);
  });

  it('JSON: host ::1, port 8080 (the default port 80 without one)', () => {
    const r = meshlet(['explain', CONFIG, '--service', 'client', '-o', 'json', 'http://[::1]:8080/x']);
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout);
    assert.deepEqual([d.destinations[0].host, d.destinations[0].port, d.destinations[0].cluster], ['::1', 8080, 'PassthroughCluster']);
    const plain = JSON.parse(meshlet(['explain', CONFIG, '--service', 'client', '-o', 'json', 'http://[2001:db8::7]/']).stdout);
    assert.deepEqual([plain.destinations[0].host, plain.destinations[0].port], ['2001:db8::7', 80]);
  });
});
