/**
 * `meshlet explain` and `meshlet routes` under a Sidecar: which Sidecar applies, its egress
 * listeners and outboundTrafficPolicy, and for a host it leaves out, why (the real CLI, a child process).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-sidecar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const file = join(dir, 'mesh.yaml');
writeFileSync(
  file,
  `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: other}
spec:
  hosts: [ratings.other.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: local, namespace: default}
spec:
  egress:
  - hosts: ["./*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
);

describe('meshlet explain / routes under a Sidecar', () => {
  it('explain: a host the Sidecar leaves out gets 502 under its REGISTRY_ONLY, and says which egress hosts leave it out', () => {
    const r = meshlet(['explain', file, '--service', 'productpage', 'http://ratings.other:9080/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Outcome: +the host is not in the mesh \(or the Sidecar leaves it out\) and outboundTrafficPolicy is REGISTRY_ONLY: the caller gets 502 \(BlackHole\)$/m);
    assert.match(r.stdout, /^Sidecar: +Sidecar default\/local$/m);
    assert.match(r.stdout, /^Out of scope: +ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts of Sidecar default\/local \(\.\/\*\)$/m);
    assert.match(r.stdout, /^Unknown hosts: outboundTrafficPolicy REGISTRY_ONLY \(Sidecar default\/local\)$/m);
    const inScope = meshlet(['explain', file, '--service', 'productpage', 'http://reviews:9080/']);
    assert.match(inScope.stdout, /^Outcome: +routed$/m);
    assert.match(inScope.stdout, /^Sidecar: +Sidecar default\/local$/m);
    assert.doesNotMatch(inScope.stdout, /Out of scope/);
  });

  it('explain grpc://: the same, as the gRPC status the caller gets', () => {
    const r = meshlet(['explain', file, '--service', 'productpage', 'grpc://ratings.other:9080/ratings.Ratings/Get']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Outcome: +the host is not in the mesh \(or the Sidecar leaves it out\) and outboundTrafficPolicy is REGISTRY_ONLY: the caller gets UNAVAILABLE \(502\)$/m);
    assert.match(r.stdout, /^Out of scope: +ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts/m);
  });

  it('explain -o json carries the Sidecar, the reason and the policy', () => {
    const r = meshlet(['explain', file, '--service', 'productpage', '-o', 'json', 'http://ratings.other:9080/']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.outcome, 'registry-only');
    assert.equal(doc.sidecar, 'Sidecar default/local');
    assert.match(doc.outOfScope, /is not in the egress hosts of Sidecar default\/local/);
    assert.equal(doc.outboundTrafficPolicy, 'REGISTRY_ONLY (Sidecar default/local)');
  });

  it('explain for a workload of another namespace: no Sidecar applies', () => {
    const r = meshlet(['explain', file, '--service', 'web', '-n', 'shop', 'http://ratings.other:9080/']);
    assert.match(r.stdout, /^Outcome: +routed$/m);
    assert.doesNotMatch(r.stdout, /Sidecar/);
  });

  it('routes: the Sidecar, its egress listeners and policy; only the services it imports', () => {
    const r = meshlet(['routes', file, '--service', 'productpage']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Sidecar default\/local scopes what it reaches:\n {2}egress any port: \.\/\*\n {2}outboundTrafficPolicy: REGISTRY_ONLY$/m);
    assert.match(r.stdout, /^reviews\.default\.svc\.cluster\.local:9080/m);
    assert.doesNotMatch(r.stdout, /ratings/);
    const json = JSON.parse(meshlet(['routes', file, '--service', 'productpage', '-o', 'json']).stdout);
    assert.deepEqual(json.sidecar, { name: 'default/local', egress: [{ port: null, hosts: ['./*'] }], outboundTrafficPolicy: 'REGISTRY_ONLY', egressProxy: null });
    assert.equal(JSON.parse(meshlet(['routes', file, '--service', 'web', '-n', 'shop', '-o', 'json']).stdout).sidecar, null);
  });

  it('--root-namespace: the root namespace whose selector-less Sidecar applies to namespaces without one', () => {
    const rooted = join(dir, 'rooted.yaml');
    writeFileSync(rooted, `${readFileSync(file, 'utf8')}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: mesh-default, namespace: mesh-root}
spec:
  egress:
  - hosts: ["./*"]
`);
    assert.equal(JSON.parse(meshlet(['routes', rooted, '--service', 'web', '-n', 'shop', '-o', 'json']).stdout).sidecar, null);
    const routes = JSON.parse(meshlet(['routes', rooted, '--service', 'web', '-n', 'shop', '--root-namespace', 'mesh-root', '-o', 'json']).stdout);
    assert.equal(routes.sidecar?.name, 'mesh-root/mesh-default');
    assert.deepEqual(routes.virtualHosts, []);
    const r = meshlet(['explain', rooted, '--service', 'web', '-n', 'shop', '--root-namespace', 'mesh-root', 'http://ratings.other:9080/']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Sidecar: +Sidecar mesh-root\/mesh-default$/m);
    assert.match(r.stdout, /^Out of scope: +ratings\.other\.svc\.cluster\.local \(namespace other\) is not in the egress hosts of Sidecar mesh-root\/mesh-default/m);
  });
});
