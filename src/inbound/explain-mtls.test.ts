/**
 * The inbound explainer shows the PeerAuthentication of the request's port and refuses the
 * connection where the server would: plaintext under STRICT, mTLS under DISABLE, portLevelMtls
 * overriding the workload's mode.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateYaml } from '../../test/helpers/config.ts';
import { explainInbound } from './explain.ts';

const WORKLOAD = { service: 'httpbin', namespace: 'foo', labels: { app: 'httpbin' } };
const pa = (name: string, ns: string, spec: string) => `---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: ${spec}\n`;
const YAML = pa('default', 'istio-system', '{mtls: {mode: STRICT}}') + pa('httpbin', 'foo', '{selector: {matchLabels: {app: httpbin}}, portLevelMtls: {"8081": {mode: PERMISSIVE}, "8082": {mode: DISABLE}}}');

describe('explainInbound: PeerAuthentication', () => {
  const { resources, errors } = validateYaml(YAML);
  assert.deepEqual(errors, []);
  const rows: { name: string; port: number; principal?: string; status: number; mode: string; portLevel: boolean; text: RegExp }[] = [
    { name: 'plaintext on a STRICT port: refused', port: 8080, status: 0, mode: 'STRICT', portLevel: false, text: /mTLS: +PeerAuthentication STRICT on port 8080 \(mesh istio-system\/default, workload foo\/httpbin\) → plaintext refused[\s\S]*Verdict: +connection refused by the peer-authentication step — PeerAuthentication STRICT on port 8080: plaintext under STRICT/ },
    { name: 'mTLS on a STRICT port: accepted', port: 8080, principal: 'cluster.local/ns/bar/sa/sleep', status: 200, mode: 'STRICT', portLevel: false, text: /→ mTLS accepted[\s\S]*Verdict: +reaches the app/ },
    { name: 'plaintext on a PERMISSIVE port (portLevelMtls): accepted', port: 8081, status: 200, mode: 'PERMISSIVE', portLevel: true, text: /PERMISSIVE on port 8081 .*\(portLevelMtls\)\) → plaintext accepted/ },
    { name: 'mTLS on a DISABLE port: refused', port: 8082, principal: 'cluster.local/ns/bar/sa/sleep', status: 0, mode: 'DISABLE', portLevel: true, text: /→ mTLS refused: the connection is closed[\s\S]*mTLS under DISABLE/ },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      const e = await explainInbound(resources, { url: '/get', port: row.port, source: { principal: row.principal } }, { workload: WORKLOAD });
      assert.equal(e.status, row.status);
      assert.equal(e.refusedBy, row.status === 0 ? 'peer-authentication' : undefined);
      assert.deepEqual(e.peerAuthentication, { mode: row.mode, portLevel: row.portLevel, policies: { mesh: 'istio-system/default', workload: 'foo/httpbin' }, accepted: row.status !== 0 });
      assert.match(String(e), row.text);
    });
  }

  it('without any PeerAuthentication: PERMISSIVE, the default', async () => {
    const e = await explainInbound([], { url: '/get' }, { workload: WORKLOAD });
    assert.deepEqual(e.peerAuthentication, { mode: 'PERMISSIVE', portLevel: false, policies: {}, accepted: true });
    assert.match(String(e), /PeerAuthentication PERMISSIVE on port 80 \(no PeerAuthentication applies: the default\) → plaintext accepted/);
  });
});
