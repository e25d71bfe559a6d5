/**
 * The reviews service: two versions, each a plain grpc-js server, as two pods would be.
 *
 *   node examples/grpc/server.ts     (v1 on 127.0.0.1:50051, v2 on :50052; PORT_V1 / PORT_V2
 *                                     change them, 0 picks a free port)
 *
 * v2 answers every other GetReview with UNAVAILABLE (a flaky version): the mesh's retries on the
 * client side (mesh/reviews.yaml) hide that from the caller.
 */
import { grpc, type Review, type ReviewRequest, ReviewsClient } from './proto.ts';

const REVIEWS: Omit<Review, 'product_id' | 'version'>[] = [
  { text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!', stars: 5 },
  { text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.', stars: 4 },
];

function start(version: 'v1' | 'v2', port: number): Promise<{ server: grpc.Server; port: number }> {
  // ── Server side of the mesh ─────────────────────────────────────────────────────────────────
  // The mesh's server-side phases (PeerAuthentication, JWT from metadata, AuthorizationPolicy on
  // /reviews.Reviews/<Method>, local rate limits, telemetry) come in as interceptors, from a mesh
  // created for this workload:
  //
  //   const mesh = await createMesh({ service: 'reviews', labels: { app: 'reviews', version }, config: './mesh' });
  //   const server = new grpc.Server({ interceptors: mesh.grpc.serverInterceptors() });
  //   server.bindAsync(address, mesh.grpc.serverCredentials(), …);
  //
  // TODO(issue 16): switch to that once mesh.grpc.serverInterceptors() is on main; until then
  // the servers are plain grpc-js and only the client side runs through the mesh.
  const server = new grpc.Server();
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
  });
  return new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve({ server, port: bound }))),
  );
}

const v1 = await start('v1', Number(process.env.PORT_V1 ?? 50051));
const v2 = await start('v2', Number(process.env.PORT_V2 ?? 50052));
console.log(`reviews v1 listening on 127.0.0.1:${v1.port}`);
console.log(`reviews v2 listening on 127.0.0.1:${v2.port}`);

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    let left = 2;
    for (const s of [v1.server, v2.server]) s.tryShutdown(() => --left === 0 && process.exit(0));
  });
}
