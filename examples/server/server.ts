/**
 * The server side: an Express app behind the mesh, judged by Istio's own policies
 * (examples/server/mesh/httpbin.yaml: JWT authentication, authorization, a local rate limit).
 *
 *   node examples/server/server.ts            (PORT=8000 by default; PORT=0 picks a free port)
 *
 *   curl -i localhost:8000/ip                                        → 200 (open to everyone)
 *   curl -i localhost:8000/headers                                   → 403 RBAC: access denied (no token)
 *   curl -i -H "Authorization: Bearer $(cat test/fixtures/istio/jwt/demo.jwt)" localhost:8000/headers
 *                                                                    → 200, principal testing@secure.istio.io/testing@secure.istio.io
 *   curl -i -H "Authorization: Bearer bad" localhost:8000/headers    → 401 Jwt is not in the form of Header.Payload.Signature …
 *   curl -i --path-as-is localhost:8000/ip/../admin                  → 403 (judged as /admin)
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createMesh } from '../../src/index.ts';

const mesh = await createMesh({
  service: 'httpbin',
  namespace: 'foo',
  labels: { app: 'httpbin', version: 'v1' },
  config: new URL('./mesh', import.meta.url).pathname,
});

const app = express();
app.use(mesh.express()); // first: every request is judged before any route sees it
app.get('/ip', (req, res) => {
  res.json({ origin: req.socket.remoteAddress });
});
app.get('/healthz', (_req, res) => {
  res.send('ok');
});
app.get('/headers', (req, res) => {
  // req.meshlet: who the mesh let in, and which policy and rule allowed it.
  res.json({ headers: req.headers, meshlet: (req as { meshlet?: unknown }).meshlet });
});
app.get('/admin', (_req, res) => {
  res.send('never reached: deny-admin denies it');
});

// mesh.createServer: drained by mesh.close() (in-flight requests finish, then it closes).
const server = mesh.createServer(app).listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  console.log(`httpbin listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void mesh.close().then(() => process.exit(0));
  });
}
