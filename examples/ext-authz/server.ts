/**
 * AuthorizationPolicy CUSTOM with a gRPC external authorizer (Istio's `envoyExtAuthzGrpc`): an
 * Express app behind the mesh, whose /headers the authorizer in authorizer.ts judges
 * (examples/ext-authz/mesh/ext-authz.yaml). For the demo, the authorizer runs in this process on
 * a port of its own; in a cluster it is a service (`ext-authz.foo.svc.cluster.local:9000`), which
 * the mesh calls through its own gRPC channel — routed, and with mTLS where the mesh has it.
 *
 *   node examples/ext-authz/server.ts             (PORT=8000 by default; PORT=0 picks a free port)
 *
 *   curl -i localhost:8000/ip                            → 200 (no CUSTOM rule: never sent to the authorizer)
 *   curl -i localhost:8000/headers                       → 403 denied by ext_authz for not found header `x-ext-authz: allow` …
 *   curl -i -H "x-ext-authz: allow" localhost:8000/headers
 *                                                        → 200, the app sees x-ext-authz-check-result: allowed
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createMesh } from '../../src/index.ts';
import { startAuthorizer } from './authorizer.ts';

const authorizer = await startAuthorizer();

const mesh = await createMesh({
  service: 'httpbin',
  namespace: 'foo',
  labels: { app: 'httpbin', version: 'v1' },
  config: new URL('./mesh', import.meta.url).pathname,
  // As Istio's mesh config `extensionProviders`; `service` would be ext-authz.foo.svc.cluster.local in a cluster.
  extensionProviders: [{ name: 'sample-ext-authz-grpc', envoyExtAuthzGrpc: { service: '127.0.0.1', port: authorizer.port, timeout: '5s' } }],
});

const app = express();
app.use(mesh.express());
app.get('/ip', (req, res) => {
  res.json({ origin: req.socket.remoteAddress });
});
app.get('/headers', (req, res) => {
  res.json({ headers: req.headers, meshlet: (req as { meshlet?: unknown }).meshlet });
});

const server = mesh.createServer(app).listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  console.log(`httpbin listening on http://127.0.0.1:${(server.address() as AddressInfo).port} (authorizer on 127.0.0.1:${authorizer.port})`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void mesh.close().then(() => {
      authorizer.server.forceShutdown();
      process.exit(0);
    });
  });
}
