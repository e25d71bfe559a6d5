/**
 * `meshlet status` lists the registered WorkloadEntries with their health, as their `Healthy`
 * condition says it (the one the control plane writes from a workload's probe reports, as
 * istiod does): `healthy`, `unhealthy: <the probe's error>`, `unhealthy: no probe result
 * reported yet` (istiod's `isHealthy`: no condition is unhealthy), and `-` for an entry that is
 * not health-checked (an endpoint whatever it reports). Control characters a workload put in its
 * message are escaped. Several URLs of replicas sharing one registry list each entry once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { api, SERVICES_YAML, startTestServer, type TestServer } from '../control-plane/server/helpers.ts';
import { meshletAsync } from './helpers.ts';

const GROUPS = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: default}
spec:
  template: {ports: {http: 9080}}
  probe: {httpGet: {path: /ready, port: 9080}}
`;

let s: TestServer;
before(async () => {
  s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'groups.yaml': GROUPS });
});
after(() => s.close());

async function register(token: string, address: string, healthChecks: boolean): Promise<string> {
  const r = await api(s.url, 'POST', '/v1/workloads', { token, body: { address, healthChecks, ports: { http: 9080 } } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.name as string;
}

async function report(token: string, name: string, healthy: boolean, message?: string): Promise<void> {
  const r = await api(s.url, 'PUT', `/v1/workloads/default/${name}/health`, { token, body: { healthy, ...(message === undefined ? {} : { message }) } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

test('status: the registered WorkloadEntries with a HEALTH column (healthy, unhealthy with the message, - when not health-checked)', async () => {
  const reviews = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
  const ratings = await s.cp.mintToken({ service: 'ratings', namespace: 'default' });
  const up = await register(reviews, '10.9.0.1', true);
  const down = await register(reviews, '10.9.0.2', true);
  const waiting = await register(reviews, '10.9.0.3', true);
  const plain = await register(ratings, '10.9.0.4', true);
  await report(reviews, up, true);
  await report(reviews, down, false, 'status code was not from [200,400), bad code 500 \u001b[31m');
  const r = await meshletAsync(['status', '--control-plane', `${s.url},${s.url}`, '--token', s.admin], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
  assert.equal(r.code, 0, r.stderr);
  const section = r.stdout.slice(r.stdout.indexOf('Registered WorkloadEntries:'));
  assert.match(section, /^Registered WorkloadEntries:\nNAMESPACE\s+NAME\s+ADDRESS\s+HEALTH\n/);
  const row = (name: string) => section.split('\n').filter((l) => l.includes(name));
  assert.match(row(up).join('\n'), /^default\s+\S+\s+10\.9\.0\.1\s+healthy$/);
  assert.deepEqual(
    row(down).map((l) => l.replace(/^default\s+\S+\s+10\.9\.0\.2\s+/, '')),
    ['unhealthy: status code was not from [200,400), bad code 500 \\x1b[31m'],
    'once (two URLs of one replica), the message escaped',
  );
  assert.match(row(waiting).join('\n'), /10\.9\.0\.3\s+unhealthy: no probe result reported yet$/);
  assert.match(row(plain).join('\n'), /10\.9\.0\.4\s+-$/);
  // Healthy again: the column follows the condition.
  await report(reviews, down, true);
  const again = await meshletAsync(['status', '--control-plane', s.url, '--token', s.admin], { env: { MESHLET_CONTROL_PLANE: '', MESHLET_TOKEN: '' } });
  assert.match(again.stdout, /10\.9\.0\.2\s+healthy\n/);
});
