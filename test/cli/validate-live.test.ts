/**
 * `meshlet analyze --control-plane <url> [files]`: the files analysed together with what the
 * control plane serves, as `istioctl analyze file.yaml` analyses a file with the cluster's
 * resources. Without it, checking one change before applying it (a VirtualService routing to a
 * subset the live DestinationRule has) reported its host and subsets as missing, and the change
 * that does break the live config (a DestinationRule dropping a subset a served VirtualService
 * routes to) as clean.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../control-plane/server/helpers.ts';

const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

const LIVE = `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
`;
const ROUTE_V3 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 50}
    - {destination: {host: reviews, subset: v3}, weight: 50}
`;
const RULE_V1 = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
`;

type Run = { code: number; stdout: string; stderr: string };

describe('meshlet analyze --control-plane: files over the served config', { timeout: 60_000 }, () => {
  let s: TestServer;
  let dir: string;
  const analyze = async (...args: string[]): Promise<Run> => {
    try {
      const r = await promisify(execFile)(process.execPath, [MAIN, 'analyze', ...args], { encoding: 'utf8', env: { ...process.env, MESHLET_TOKEN: s.admin, MESHLET_CONTROL_PLANE: '' } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  before(async () => {
    s = await startTestServer({ 'live.yaml': LIVE });
    dir = await mkdtemp(join(tmpdir(), 'meshlet-analyze-live-'));
    await writeFile(join(dir, 'route-v3.yaml'), ROUTE_V3);
    await writeFile(join(dir, 'rule-v1.yaml'), RULE_V1);
  });
  after(async () => {
    await s?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('a change that fits the served config is clean; alone, its host and subsets are missing', async () => {
    const live = await analyze('--control-plane', s.url, join(dir, 'route-v3.yaml'));
    assert.equal(live.stdout, '0 error(s), 0 warning(s), 0 info(s); 3 valid resource(s)\n');
    assert.equal(live.code, 0);
    const alone = await analyze(join(dir, 'route-v3.yaml'));
    assert.equal(alone.code, 1);
    assert.match(alone.stdout, /IST0101 .*referenced host "reviews"/);
  });

  it('a change that breaks a served resource (a subset its VirtualService routes to, dropped) is an error on that resource', async () => {
    const r = await analyze('--control-plane', s.url, join(dir, 'rule-v1.yaml'));
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^error {3}IST0101 <control-plane>: VirtualService default\/reviews: spec\.http\[0\]\.route\[1\]\.destination\.subset: referenced subset "v3" /m);
    // With the VirtualService that stops routing there: clean.
    await writeFile(join(dir, 'route-v1.yaml'), ROUTE_V3.replace(/weight: 50\}\n.*subset: v3.*\n/, 'weight: 100}\n'));
    const both = await analyze('--control-plane', s.url, join(dir, 'rule-v1.yaml'), join(dir, 'route-v1.yaml'));
    assert.equal(both.code, 0, both.stdout);
  });

  it('without files: the served config alone, its issues named <control-plane>', async () => {
    await writeFile(join(s.configDir, '.vs.tmp'), ROUTE_V3.replace('name: reviews,', 'name: reviews-b,').replace('subset: v3', 'subset: v9'));
    const { rename } = await import('node:fs/promises');
    await rename(join(s.configDir, '.vs.tmp'), join(s.configDir, 'vs-b.yaml'));
    const deadline = Date.now() + 5000;
    let r: Run;
    do r = await analyze('--control-plane', s.url);
    while (!r.stdout.includes('subset "v9"') && Date.now() < deadline);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^error {3}IST0101 <control-plane>: VirtualService default\/reviews-b: spec\.http\[0\]\.route\[1\]\.destination\.subset: referenced subset "v9"/m);
  });

  it('names no file and no control plane: a usage mistake', async () => {
    const r = await analyze();
    assert.equal(r.code, 2);
    assert.match(r.stderr, /name at least one file or directory \(or - for standard input\), or --control-plane to analyse what it serves/);
  });
});
