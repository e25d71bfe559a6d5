/**
 * A MeshConfig whose `extensionProviders` holds an entry istiod only warns about (an
 * envoyExtAuthzHttp without a port: pkg/config/validation/agent/extensionprovider.go
 * `ValidateExtensionProviderEnvoyExtAuthzHTTP`, reported by validation.go `ValidateMeshConfig`
 * with `scope.Warnf("found invalid extension provider …")`, not as an error) is loaded, as istiod
 * loads it: the control plane starts with it and pushes it, a mesh takes the rest of it and leaves
 * that provider out, warning and naming the entry. A provider with two kinds (a oneof set
 * twice, which istiod cannot even parse) is still refused. Real control plane, a mesh fed over loopback.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControlPlane } from '../../src/control-plane-server/server.ts';
import { createMesh } from '../../src/index.ts';
import { call, startUpstream } from '../helpers/upstreams.ts';
import { quietLogger, startTestControlPlane } from './client-helpers.ts';

const open: { close(): unknown }[] = [];
after(async () => {
  for (const o of open.reverse()) await o.close();
});

const BAD_PROVIDER = { name: 'authz', envoyExtAuthzHttp: { service: 'authz.default.svc.cluster.local' } };

describe('a MeshConfig extension provider istiod only warns about', () => {
  it('the control plane pushes the MeshConfig; a mesh applies the rest, leaves the provider out and names it', async () => {
    const outside = await startUpstream('outside');
    open.push(outside);
    const t = await startTestControlPlane({}, { meshConfig: { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' }, extensionProviders: [BAD_PROVIDER, { name: 'logs', envoyFileAccessLog: { path: '/dev/null' } }] } });
    open.push({ close: () => t.close() });
    const warnings: string[] = [];
    const token = await t.cp.mintToken({ service: 'productpage', namespace: 'default' });
    const mesh = await createMesh({ service: 'productpage', controlPlane: t.cp.url, token, identity: 'none', logger: { warn: (m: string) => warnings.push(m), info: () => undefined } });
    open.unshift(mesh);
    // The rest of the MeshConfig applies: REGISTRY_ONLY refuses a host outside the registry (502).
    assert.equal((await call(mesh, `http://127.0.0.1:${outside.port}/`)).status, 502);
    const named = warnings.filter((w) => w.includes('extensionProviders[0] (authz).envoyExtAuthzHttp'));
    assert.equal(named.length, 1, warnings.join('\n'));
    assert.match(named[0] ?? '', /port must be in the range \[1, 65535\].*istiod only warns about it; this provider is not used/);
  });

  it('a provider with two kinds (a oneof set twice) is still refused, naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-ep-'));
    open.push({ close: () => rmSync(dir, { recursive: true, force: true }) });
    await assert.rejects(
      startControlPlane({ configDir: dir, dataDir: dir, host: '127.0.0.1', port: 0, logger: quietLogger, meshConfig: { extensionProviders: [{ name: 'x', envoyFileAccessLog: {}, prometheus: {} }] } }),
      /extensionProviders\[0\] \(x\): a provider has exactly one kind/,
    );
  });
});
