/**
 * IPv6 endpoints are written as Envoy and istioctl write a socket address, `[2001:db8::21]:15443`,
 * wherever a user sees one: mesh.explain(), admin `/clusters`, the access log's UPSTREAM_HOST,
 * `meshlet routes` and `meshlet explain`. A real upstream on [::1] behind a ServiceEntry.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createMesh } from '../../src/index.ts';
import { meshlet } from '../cli/helpers.ts';
import { call, serviceEntry, startUpstream } from '../helpers/upstreams.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-ipv6-endpoints-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('IPv6 endpoints shown to users', () => {
  it('mesh.explain(), /clusters and the access log bracket an IPv6 endpoint; the call reaches it', async () => {
    const up = await startUpstream('v6', undefined, '::1');
    const lines: string[] = [];
    after(() => up.close());
    const mesh = await createMesh({
      service: 'client',
      logger: { warn: () => {}, info: (l: string) => lines.push(l) },
      admin: { port: 0 },
      telemetry: { accessLog: { file: '/dev/stdout', format: 'upstream=%UPSTREAM_HOST%\n' } },
      config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ address: '::1', port: up.port }])],
    });
    try {
      const r = await call(mesh, 'http://svc/');
      assert.equal(r.status, 200);
      assert.equal(r.upstream, 'v6');
      const ep = `[::1]:${up.port}`;
      const e = mesh.explain({ url: 'http://svc/' });
      assert.equal(e.targets[0]?.endpoints[0]?.endpoint, ep);
      assert.ok(String(e).includes(ep), String(e));
      const text = await get(`${mesh.adminUrl}/clusters`);
      assert.match(text, new RegExp(`^outbound\\|80\\|\\|svc\\.default\\.svc\\.cluster\\.local::\\[::1\\]:${up.port}::cx_active::\\d+$`, 'm'), text);
      const json = JSON.parse(await get(`${mesh.adminUrl}/clusters?format=json`));
      const status = json.cluster_statuses.find((c: { name: string }) => c.name === 'outbound|80||svc.default.svc.cluster.local');
      assert.deepEqual(status.host_statuses[0].address.socket_address, { address: '::1', port_value: up.port });
      assert.ok(lines.some((l) => l.trim() === `upstream=${ep}`), JSON.stringify(lines));
    } finally {
      await mesh.close();
    }
  });

  it('meshlet routes and meshlet explain bracket an IPv6 endpoint', () => {
    const file = join(dir, 'svc.yaml');
    writeFileSync(
      file,
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP, targetPort: 15443}]
  endpoints:
  - {address: "2001:db8::21"}
`,
    );
    const routes = meshlet(['routes', file, '--service', 'client']);
    assert.equal(routes.code, 0, routes.stderr);
    assert.match(routes.stdout, /\[2001:db8::21\]:15443/, routes.stdout);
    assert.doesNotMatch(routes.stdout, /[^[]2001:db8::21:15443/, routes.stdout);
    const explain = meshlet(['explain', file, '--service', 'client', 'http://api.internal:8080/']);
    assert.equal(explain.code, 0, explain.stderr);
    assert.match(explain.stdout, /\[2001:db8::21\]:15443/, explain.stdout);
    assert.doesNotMatch(explain.stdout, /[^[]2001:db8::21:15443/, explain.stdout);
  });
});
