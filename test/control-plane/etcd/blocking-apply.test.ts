/**
 * A control plane with `--analysis blocking` refuses an apply whose result has error-level
 * findings; the refusal names what was sent by its place in the request (`<apply>[i]`), which
 * `meshlet apply -f` turns into the file and the line of the field — over etcd as over a
 * directory. Over etcd the refusal named the stored key instead
 * (`etcd:/meshlet/config/VirtualService/default/reviews: …`), which the user never wrote; and a
 * `--config` directory's change that etcd refuses named keys too, not the file.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { type EtcdStores, openEtcd } from '../../../src/control-plane-server/etcd/index.ts';
import { type ControlPlane, startControlPlane } from '../../../src/control-plane-server/server.ts';
import { type EtcdServer, startEtcd } from '../../helpers/etcd.ts';
import { skipWithout } from '../../helpers/tools.ts';
import { api, startTestServer, type TestServer } from '../server/helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`;
const route = (subset: string, timeout = '1s') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - timeout: ${timeout}
    route:
    - destination: {host: reviews, subset: ${subset}}
`;

async function refusals(url: string, token: string): Promise<void> {
  const ok = await api(url, 'POST', '/v1/resources', { token, text: SERVICE, headers: { 'content-type': 'application/yaml' } });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  // Through the API: the finding (IST0101, an error) names the resource by its place in the request.
  const r = await api(url, 'POST', '/v1/resources', { token, text: `${SERVICE}---\n${route('v9')}`, headers: { 'content-type': 'application/yaml' } });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.deepEqual(r.body.error.issues, [
    '<apply>[1]: VirtualService default/reviews: spec.http[0].route[0].destination.subset: referenced subset "v9" of host reviews.default.svc.cluster.local is not defined by any DestinationRule',
  ]);

  // Through meshlet apply -f: the file and the line of the field.
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-blocking-apply-'));
  try {
    const file = join(dir, 'vs.yaml');
    await writeFile(file, route('v9'));
    const run = promisify(execFile)(process.execPath, [MAIN, 'apply', '-f', file], { encoding: 'utf8', env: { ...process.env, MESHLET_CONTROL_PLANE: url, MESHLET_TOKEN: token } });
    const err = await run.then(
      () => assert.fail('the apply was not refused'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(err.code, 1);
    assert.match(err.stderr, new RegExp(`^ {2}${file}: VirtualService default/reviews: spec\\.http\\[0\\]\\.route\\[0\\]\\.destination\\.subset: referenced subset "v9" .*\\(line 9\\)$`, 'm'));
    assert.doesNotMatch(err.stderr, /etcd:|<apply>/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('a blocking control plane names the applied file and line in a refusal: over etcd', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let stores: EtcdStores;
  let cp: ControlPlane;
  let admin: string;
  let dataDir: string;

  before(async () => {
    etcd = await startEtcd();
    dataDir = await mkdtemp(join(tmpdir(), 'meshlet-blocking-apply-'));
    const logger = { warn: () => undefined, info: () => undefined };
    stores = await openEtcd(etcd.endpoints, { logger, analysis: 'blocking' });
    cp = await startControlPlane({ ...stores, dataDir, host: '127.0.0.1', port: 0, logger, analysis: 'blocking' });
    admin = await cp.mintToken({ admin: true });
  });
  after(async () => {
    await cp?.close();
    await stores?.close();
    await etcd?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('an IST0101 refusal: <apply>[i] through the API, the file and line through meshlet apply', () => refusals(cp.url, admin));

  it('a value invalid on its own, sent through the API: named by its place too', async () => {
    const r = await api(cp.url, 'POST', '/v1/resources', { token: admin, text: route('v1', 'soon'), headers: { 'content-type': 'application/yaml' } });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.ok(r.body.error.issues.length > 0);
    for (const i of r.body.error.issues as string[]) assert.match(i, /^(error \S+: )?<apply>\[0\]: /);
  });
});

describe('a blocking control plane names the applied file and line in a refusal: over a directory', { timeout: 60_000 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({}, { analysis: 'blocking' });
  });
  after(async () => {
    await s?.close();
  });

  it('an IST0101 refusal: <apply>[i] through the API, the file and line through meshlet apply', () => refusals(s.url, s.admin));
});

describe('etcd with --config and blocking analysis: a file change etcd refuses names the file', { skip: skipWithout('etcd'), timeout: 60_000 }, () => {
  let etcd: EtcdServer;
  let stores: EtcdStores;
  let dir: string;
  const logs: string[] = [];

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'meshlet-blocking-files-'));
    await mkdir(join(dir, 'mesh'));
    await writeFile(join(dir, 'mesh', 'service.yaml'), SERVICE);
    stores = await openEtcd(etcd.endpoints, { configDir: join(dir, 'mesh'), analysis: 'blocking', logger: { warn: (m) => logs.push(m), info: () => undefined } });
  });
  after(async () => {
    await stores?.close();
    await etcd?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('a file VirtualService for a host one applied through the API routes: IST0109 on the file by its path', async () => {
    await stores.store.apply([{ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews-api', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } }], 'apply by admin');
    const file = join(dir, 'mesh', 'vs.yaml');
    await writeFile(file, route('v1').replace('subset: v1', 'port: {number: 9080}'));
    for (let i = 0; i < 500 && !logs.some((l) => l.includes('not applied into etcd')); i++) await new Promise((r) => setTimeout(r, 10));
    const refusal = logs.find((l) => l.includes('not applied into etcd')) ?? '';
    assert.match(refusal, new RegExp(`\\n {2}${file}: VirtualService default/reviews: spec\\.hosts\\[0\\]: host reviews\\.default\\.svc\\.cluster\\.local is also claimed by VirtualService default/reviews-api`), refusal);
    // The one the change did not touch is named as it is stored.
    assert.match(refusal, /etcd:\/meshlet\/config\/VirtualService\/default\/reviews-api: VirtualService default\/reviews-api: /);
  });
});
