/**
 * Analysis is advisory on the control plane, as `istioctl analyze` is to istiod: config with
 * findings (a route to an undefined subset: IST0101) is served, the findings are logged once and
 * shown in /status and `meshlet status`, and `--analysis blocking` makes error-level findings
 * refuse config as schema errors do.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { api, SERVICES_YAML, startTestServer, until, watch } from './helpers.ts';

const MAIN = new URL('../../../src/cli/main.ts', import.meta.url).pathname;

const MISSING_SUBSET = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
`;

describe('analysis findings on the control plane', () => {
  it('advisory (default): config with an IST0101 finding is served; /status lists the finding; it is logged once', async () => {
    const s = await startTestServer({ 'services.yaml': SERVICES_YAML, 'reviews.yaml': MISSING_SUBSET });
    try {
      const status = s.cp.status();
      assert.equal(status.findings.length, 1);
      const [f] = status.findings;
      assert.equal(f?.level, 'error');
      assert.equal(f?.code, 'IST0101');
      assert.equal(f?.resource, 'VirtualService default/reviews');
      assert.match(f?.text ?? '', /subset "v9"/);
      const token = await s.cp.mintToken({ service: 'productpage', namespace: 'default' });
      const w = await watch(s.url, 'service=productpage&namespace=default', { token });
      const config = await w.next('config');
      assert.ok(config.data.resources.some((r: { kind: string }) => r.kind === 'VirtualService'), 'the VirtualService is served');
      w.close();
      assert.equal(s.logs.filter((l) => l.includes('IST0101')).length, 1, s.logs.join('\n'));
      // An unrelated change keeps the finding: it is not logged again.
      // Written in one step (a dotfile renamed into place): a file written in place is read only
      // after 1 s of quiet, which took most of the wait below on a loaded machine.
      writeFileSync(join(s.configDir, '.other.yaml.tmp'), SERVICES_YAML.replace('name: services', 'name: more').replace(/hosts: \[.*\]/, 'hosts: [details.default.svc.cluster.local]'));
      renameSync(join(s.configDir, '.other.yaml.tmp'), join(s.configDir, 'other.yaml'));
      await until(() => s.cp.status().configVersion !== status.configVersion, 3000, 'the change is applied');
      assert.equal(s.cp.status().findings.length, 1);
      assert.equal(s.logs.filter((l) => l.includes('IST0101')).length, 1, 'logged once');
      // An apply that brings a new finding answers with it as a warning.
      const r = await api(s.url, 'POST', '/v1/resources', {
        token: s.admin,
        text: MISSING_SUBSET.replace('name: reviews,', 'name: ratings,').replace('[reviews]', '[ratings]').replace('host: reviews', 'host: ratings'),
        headers: { 'content-type': 'application/yaml' },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.warnings.some((w: string) => /^error IST0101: .*VirtualService default\/ratings.*subset "v9"/.test(w)), JSON.stringify(r.body.warnings));
      assert.equal(s.cp.status().findings.length, 2);
      // meshlet status prints them (the server lives in this process: run the CLI asynchronously).
      const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [MAIN, 'status', '--control-plane', s.url], { env: { ...process.env, MESHLET_TOKEN: s.admin }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (c) => (out += String(c)));
        child.stderr.on('data', (c) => (out += String(c)));
        child.on('close', (code) => resolve({ code, out }));
      });
      assert.equal(cli.code, 0, cli.out);
      assert.match(cli.out, /Analysis findings of the config being served \(advisory/);
      assert.match(cli.out, /error +IST0101 .*VirtualService default\/ratings/);
      assert.match(cli.out, /error +IST0101 .*VirtualService default\/reviews/);
    } finally {
      await s.close();
    }
  });

  it('--analysis blocking: an error-level finding refuses the config', async () => {
    await assert.rejects(startTestServer({ 'services.yaml': SERVICES_YAML, 'reviews.yaml': MISSING_SUBSET }, { analysis: 'blocking' }), /IST0101|subset "v9"/);
    const s = await startTestServer({ 'services.yaml': SERVICES_YAML }, { analysis: 'blocking' });
    try {
      const r = await api(s.url, 'POST', '/v1/resources', { token: s.admin, text: MISSING_SUBSET, headers: { 'content-type': 'application/yaml' } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'INVALID');
      assert.ok(r.body.error.issues.some((i: string) => /subset "v9"/.test(i)), JSON.stringify(r.body));
      assert.deepEqual(s.cp.status().findings, []);
    } finally {
      await s.close();
    }
  });
});
