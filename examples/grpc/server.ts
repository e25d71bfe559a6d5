/**
 * The reviews service: two versions, each a grpc-js server under a mesh of its own, as two pods
 * with their sidecars would be.
 *
 *   node examples/grpc/server.ts     (v1 on 127.0.0.1:50051, v2 on :50052; PORT_V1 / PORT_V2
 *                                     change them, 0 picks a free port; MESH_CONFIG=<dir or
 *                                     file> to use another config)
 *
 * Each server's calls go through its mesh's server side first (mesh.grpc.serverInterceptors()):
 * mesh/authorization.yaml allows GetReview and ListReviews, so DeleteReview is answered
 * PERMISSION_DENIED before its handler runs. v2 answers every other GetReview with UNAVAILABLE
 * (a flaky version): the mesh's retries on the client side (mesh/reviews.yaml) hide that from
 * the caller.
 */
import { createMesh, type Mesh } from '../../src/index.ts';
import { grpc, type Review, type ReviewRequest, ReviewsClient } from './proto.ts';

const CONFIG = process.env.MESH_CONFIG ?? new URL('./mesh', import.meta.url).pathname;

const REVIEWS: Omit<Review, 'product_id' | 'version'>[] = [
  { text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!', stars: 5 },
  { text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.', stars: 4 },
];

async function start(version: 'v1' | 'v2', port: number): Promise<{ server: grpc.Server; mesh: Mesh; port: number }> {
  // ── Server side of the mesh ─────────────────────────────────────────────────────────────────
  // A mesh for this workload (its labels select the policies, as a sidecar's pod labels do), and
  // its server-side phases as the server's interceptors: JWT from metadata, AuthorizationPolicy
  // on /reviews.Reviews/<Method> with method POST, local rate limits, the caller's deadline,
  // telemetry (istio_requests_total{reporter="destination"}).
  const mesh = await createMesh({ service: 'reviews', labels: { app: 'reviews', version }, config: CONFIG });
  // judgeUnserved: calls to methods this server does not serve are judged too (a sidecar judges
  // every request), then answered UNIMPLEMENTED as grpc-js answers them.
  const server = mesh.grpc.judgeUnserved(new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() }));
  let calls = 0;
  server.addService(ReviewsClient.service, {
    GetReview: (call: grpc.ServerUnaryCall<ReviewRequest, Review>, cb: grpc.sendUnaryData<Review>) => {
      calls++;
      const user = call.metadata.get('end-user')[0] ?? 'anonymous';
      if (version === 'v2' && calls % 2 === 1) {
        console.log(`${version} GetReview product ${call.request.product_id} for ${user}: UNAVAILABLE`);
        cb({ code: grpc.status.UNAVAILABLE, details: 'v2 is flaky: try again' });
        return;
      }
      console.log(`${version} GetReview product ${call.request.product_id} for ${user}: OK`);
      const r = REVIEWS[call.request.product_id % REVIEWS.length] as (typeof REVIEWS)[number];
      cb(null, { ...r, product_id: call.request.product_id, version });
    },
    ListReviews: (call: grpc.ServerWritableStream<ReviewRequest, Review>) => {
      console.log(`${version} ListReviews product ${call.request.product_id}`);
      for (const r of REVIEWS) call.write({ ...r, product_id: call.request.product_id, version });
      call.end();
    },
    // Never runs: no AuthorizationPolicy rule allows it, so the mesh answers PERMISSION_DENIED.
    DeleteReview: (call: grpc.ServerUnaryCall<ReviewRequest, Review>, cb: grpc.sendUnaryData<Review>) => {
      console.log(`${version} DeleteReview product ${call.request.product_id}: deleted`);
      cb(null, { product_id: call.request.product_id, text: '', stars: 0, version });
    },
  });
  // This example runs without workload identities, so the port is plaintext. With one
  // (createMesh({ …, identity: { devCa: './dev-ca' } }), see docs/identity.md), bind it with
  // `await mesh.grpc.bind(server, address)` instead: PeerAuthentication per connection, mTLS and
  // plaintext on one port as the mode says.
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, mesh, port: bound };
}

const v1 = await start('v1', Number(process.env.PORT_V1 ?? 50051));
const v2 = await start('v2', Number(process.env.PORT_V2 ?? 50052));
console.log(`reviews v1 listening on 127.0.0.1:${v1.port}`);
console.log(`reviews v2 listening on 127.0.0.1:${v2.port}`);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    let left = 2;
    for (const s of [v1, v2]) s.server.tryShutdown(() => void s.mesh.close().then(() => --left === 0 && process.exit(0)));
  });
}
