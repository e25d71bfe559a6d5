/**
 * `meshlet apply` answers with the analysis findings a change brings (advisory: it is served),
 * on a control plane over etcd as on one over a directory: about what it applied (a route to a
 * subset no DestinationRule defines, IST0101; a second VirtualService for one host, IST0109), and
 * about resources it did not touch that it breaks (a DestinationRule that drops a subset a
 * VirtualService still routes to: that route answers 503 NC, as Envoy answers a route whose
 * cluster istiod did not build; `istioctl analyze` reports it, IST0101). Over etcd the findings
 * at error level were dropped from the answer: the wrong-order rollout and the subset removal
 * printed nothing while half the traffic got 503 NC.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, type Json, startTestServer, type TestServer } from '../server/helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`;
const rule = (subsets: string[]) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
${subsets.map((s) => `  - {name: ${s}, labels: {version: ${s}}}`).join('\n')}
`;
const route = (name: string, subsets: string[]) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
${subsets.map((s) => `    - {destination: {host: reviews, subset: ${s}}, weight: ${100 / subsets.length}}`).join('\n')}
`;

/** The journey, against a control plane at `url` with an admin token. */
async function journey(url: string, token: string): Promise<void> {
  const apply = async (text: string): Promise<string[]> => {
    const r = await api(url, 'POST', '/v1/resources', { token, text, headers: { 'content-type': 'application/yaml' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.warnings as string[];
  };
  assert.deepEqual(await apply(`${SERVICE}---\n${rule(['v1', 'v2'])}---\n${route('reviews', ['v1', 'v2'])}`), []);

  // The VirtualService first (the wrong order): it routes to v3, which nothing defines yet.
  const vsFirst = await apply(route('reviews', ['v1', 'v3']));
  assert.equal(vsFirst.length, 1, vsFirst.join('\n'));
  assert.match(vsFirst[0]!, /^error IST0101: <apply>\[0\]: VirtualService default\/reviews: spec\.http\[0\]\.route\[1\]\.destination\.subset: referenced subset "v3" of host reviews\.default\.svc\.cluster\.local is not defined by any DestinationRule$/);
  assert.deepEqual(await apply(rule(['v1', 'v2', 'v3'])), [], 'the rule that defines v3 ends it');

  // Dropping a subset the VirtualService still routes to: the finding is about the VirtualService, which this apply did not touch.
  const dropped = await apply(rule(['v1', 'v2']));
  assert.equal(dropped.length, 1, dropped.join('\n'));
  assert.match(dropped[0]!, /^error IST0101: .*VirtualService default\/reviews: spec\.http\[0\]\.route\[1\]\.destination\.subset: referenced subset "v3"/);
  // A later, unrelated apply does not repeat a finding the config already had.
  assert.deepEqual(await apply(SERVICE.replaceAll('reviews', 'ratings')), []);

  // A second VirtualService for the host: IST0109 on both, the applied one named by its place.
  const second = await apply(route('reviews-canary', ['v1']));
  assert.ok(
    second.some((w) => /^error IST0109: <apply>\[0\]: VirtualService default\/reviews-canary: spec\.hosts\[0\]: host reviews\.default\.svc\.cluster\.local is also claimed by VirtualService default\/reviews/.test(w)),
    second.join('\n'),
  );
  const status = await api(url, 'GET', '/status', { token });
  assert.ok((status.body as Json).findings.some((f: Json) => f.code === 'IST0109'), 'and /status lists them');

  // Deleting the DestinationRule the routes use: the answer names what it breaks.
  assert.equal((await api(url, 'DELETE', '/v1/resources/VirtualService/default/reviews-canary', { token })).body.warnings.length, 0);
  assert.deepEqual(await apply(rule(['v1', 'v2', 'v3'])), []);
  const deleted = await api(url, 'DELETE', '/v1/resources/DestinationRule/default/reviews', { token });
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.equal(deleted.body.warnings.length, 2, deleted.body.warnings.join('\n'));
  for (const [i, subset] of ['v1', 'v3'].entries()) {
    assert.match(deleted.body.warnings[i], new RegExp(`^error IST0101: .*VirtualService default/reviews: spec\\.http\\[0\\]\\.route\\[${i}\\]\\.destination\\.subset: referenced subset "${subset}"`));
  }
  assert.deepEqual(await apply(rule(['v1', 'v2', 'v3'])), [], 'back');
}

/** `meshlet apply -f` prints the finding with the file and line it is about; `meshlet delete` prints what it breaks. */
async function cliNamesTheFile(url: string, token: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-apply-findings-'));
  try {
    const file = join(dir, 'vs.yaml');
    await writeFile(file, route('reviews', ['v1', 'v9']));
    const r = await promisify(execFile)(process.execPath, [MAIN, 'apply', '-f', file], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: token } });
    assert.equal(r.stdout, 'VirtualService default/reviews configured\n');
    assert.match(r.stderr, new RegExp(`^Warning: error IST0101: ${file}: VirtualService default/reviews: spec\\.http\\[0\\]\\.route\\[1\\]\\.destination\\.subset: referenced subset "v9" .*\\(line 9\\)$`, 'm'));
    const d = await promisify(execFile)(process.execPath, [MAIN, 'delete', 'dr', 'reviews'], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: token } });
    assert.equal(d.stdout, 'DestinationRule default/reviews deleted\n');
    assert.match(d.stderr, /^Warning: error IST0101: .*VirtualService default\/reviews: spec\.http\[0\]\.route\[0\]\.destination\.subset: referenced subset "v1"/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('apply answers with the findings it brings: over etcd', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let stores: EtcdStores;
  let cp: ControlPlane;
  let admin: string;
  let dataDir: string;

  before(async () => {
    etcd = await startEtcd();
    dataDir = await mkdtemp(join(tmpdir(), 'meshlet-apply-findings-'));
    const logger = { warn: () => undefined, info: () => undefined };
    stores = await openEtcd(etcd.endpoints, { logger });
    cp = await startControlPlane({ ...stores, dataDir, host: '127.0.0.1', port: 0, logger });
    admin = await cp.mintToken({ admin: true });
  });
  after(async () => {
    await cp?.close();
    await stores?.close();
    await etcd?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('the wrong order, a dropped subset, a second VirtualService, a deleted DestinationRule', () => journey(cp.url, admin));
  it('meshlet apply prints them with the file and line; meshlet delete what it breaks', () => cliNamesTheFile(cp.url, admin));
});

describe('apply answers with the findings it brings: over a directory', { timeout: 60_000 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({});
  });
  after(async () => {
    await s?.close();
  });

  it('the wrong order, a dropped subset, a second VirtualService, a deleted DestinationRule', () => journey(s.url, s.admin));
  it('meshlet apply prints them with the file and line; meshlet delete what it breaks', () => cliNamesTheFile(s.url, s.admin));
});
