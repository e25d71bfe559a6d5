/**
 * Two meshlets over mTLS, for the mesh-to-mesh tests (HTTP/1.1 and HTTP/2): an openssl-made CA,
 * a server mesh (`reviews`) whose `mesh.createServer` app answers with the caller's SPIFFE ID (or
 * `plaintext`) and records what it saw, and calling meshes (`productpage`) whose config names the
 * server's endpoint with Istio's mTLS label, so auto-mTLS applies.
 */
import type { AddressInfo } from 'node:net';
import { createMesh, type Mesh } from '../../src/index.ts';
import { cleanupPki, makeCa, type TestCa, workloadCredentials } from './pki.ts';

export const REVIEWS_HOST = 'reviews.default.svc.cluster.local';
const quiet = { warn: () => undefined, error: () => undefined };

/** The calling mesh's ServiceEntry for the server: one endpoint at `port`, labelled for auto-mTLS, port 9080 of `protocol`. */
export function reviewsEntry(protocol: string, port: number): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: [REVIEWS_HOST], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 9080, name: 'http', protocol }], endpoints: [{ address: '127.0.0.1', ports: { http: port }, serviceAccount: 'reviews', labels: { 'security.istio.io/tlsMode': 'istio' } }] },
  };
}

export interface MeshToMesh {
  readonly ca: TestCa;
  readonly server: Mesh;
  /** The server app's port. */
  readonly port: number;
  /** What the server app saw, one line per request (`record`'s). */
  readonly seen: string[];
  /** A calling mesh with `config` (closed by close()); with the CA's certificate for productpage unless `credentials: false`. */
  client(config: object[], o?: { credentials?: boolean }): Promise<Mesh>;
  /** Keeps a mesh made elsewhere to close with the rest. */
  keep(...m: Mesh[]): void;
  close(): Promise<void>;
}

/**
 * Starts the server mesh with `serverConfig` (and `probePaths`), its credentials from a new CA;
 * `record` says what is kept in `seen` for each request the app serves.
 */
export async function startMeshToMesh(serverConfig: object[], o: { probePaths?: string[]; record?: (url: string, peer: string) => string } = {}): Promise<MeshToMesh> {
  const ca = makeCa({ name: 'cluster.local' });
  const server = await createMesh({ service: 'reviews', serviceAccount: 'reviews', config: serverConfig as never, logger: quiet, ...(o.probePaths === undefined ? {} : { probePaths: o.probePaths }) });
  server.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'reviews' }));
  const seen: string[] = [];
  const record = o.record ?? ((_url: string, peer: string) => peer);
  const s = server.createServer((req, res) => {
    const peer = (req as { meshlet?: { peer?: { principal?: string } } }).meshlet?.peer?.principal ?? 'plaintext';
    seen.push(record(req.url ?? '/', peer));
    res.end(peer);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const meshes: Mesh[] = [];
  return {
    ca,
    server,
    port: (s.address() as AddressInfo).port,
    seen,
    async client(config, c = {}) {
      const m = await createMesh({ service: 'productpage', serviceAccount: 'productpage', config: config as never, logger: quiet });
      meshes.push(m);
      if (c.credentials !== false) m.credentials.set(workloadCredentials(ca, { namespace: 'default', serviceAccount: 'productpage' }));
      return m;
    },
    keep: (...m) => meshes.push(...m),
    async close() {
      await Promise.all(meshes.map((m) => m.close()));
      await server.close();
      cleanupPki();
    },
  };
}
