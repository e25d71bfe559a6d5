/**
 * A grpc-js client through the mesh: the productpage workload calling reviews:9090, routed,
 * retried and timed out by Istio's own resources (examples/grpc/mesh/reviews.yaml).
 *
 *   node examples/grpc/server.ts &     (the two reviews versions)
 *   node examples/grpc/client.ts       (MESH_CONFIG=<dir or file> to use another config,
 *                                       DEADLINE_MS=<ms> for another deadline than 1 s)
 *
 * It prints where each call went: an anonymous user to v1, "jason" (metadata end-user: jason)
 * to v2 — whose every other call fails UNAVAILABLE, retried by the mesh —, a server stream, a
 * call with a deadline, and a DeleteReview the reviews workload's AuthorizationPolicy denies
 * (mesh/authorization.yaml, enforced by the server's mesh: PERMISSION_DENIED).
 */
import { createMesh } from '../../src/index.ts';
import { grpc, type Review, type ReviewRequest, ReviewsClient } from './proto.ts';

type Reviews = grpc.Client & {
  GetReview(req: ReviewRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Review) => void): grpc.ClientUnaryCall;
  ListReviews(req: ReviewRequest, md?: grpc.Metadata): grpc.ClientReadableStream<Review>;
  DeleteReview(req: ReviewRequest, cb: (err: grpc.ServiceError | null, res?: Review) => void): grpc.ClientUnaryCall;
};

const DEADLINE_MS = Number(process.env.DEADLINE_MS ?? 1000);

const mesh = await createMesh({
  service: 'productpage',
  labels: { app: 'productpage', version: 'v1' },
  config: process.env.MESH_CONFIG ?? new URL('./mesh', import.meta.url).pathname,
});
// A normal grpc-js client; its calls go through the mesh. (Constructing it yourself works too:
// new ReviewsClient('reviews:9090', grpc.credentials.createInsecure(), mesh.grpc.channelOptions()).)
const reviews = mesh.grpc.client(ReviewsClient, 'reviews:9090') as unknown as Reviews;

function getReview(productId: number, user?: string, deadlineMs?: number): Promise<Review> {
  const md = new grpc.Metadata();
  if (user !== undefined) md.set('end-user', user);
  const opts: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
  return new Promise((resolve, reject) => reviews.GetReview({ product_id: productId }, md, opts, (err, res) => (err ? reject(err) : resolve(res as Review))));
}

try {
  for (const user of [undefined, 'jason', 'jason']) {
    const r = await getReview(1, user);
    console.log(`GetReview as ${user ?? 'anonymous'}: ${r.version} (${r.stars} stars)`);
  }
  const streamed: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = reviews.ListReviews({ product_id: 2 });
    s.on('data', (r: Review) => streamed.push(`${r.version}:${r.stars}`));
    s.on('error', reject);
    s.on('end', resolve);
  });
  console.log(`ListReviews: ${streamed.join(', ')}`);
  const r = await getReview(3, undefined, DEADLINE_MS);
  console.log(`GetReview with a ${DEADLINE_MS / 1000}s deadline: ${r.version}`);
  // Denied by the server's mesh (no ALLOW rule matches POST /reviews.Reviews/DeleteReview): the
  // handler never runs, and the caller gets the status Envoy gives a gRPC caller.
  const denied = await new Promise<grpc.ServiceError | null>((resolve) => reviews.DeleteReview({ product_id: 1 }, (err) => resolve(err)));
  console.log(`DeleteReview: ${denied === null ? 'OK (not denied!)' : `${grpc.status[denied.code]} ${denied.details}`}`);
} catch (err) {
  const e = err as grpc.ServiceError;
  console.error(`call failed: ${grpc.status[e.code] ?? e.code} ${e.details} (flags ${e.metadata?.get('x-meshlet-response-flags')[0] ?? '-'})`);
  process.exitCode = 1;
} finally {
  reviews.close();
  await mesh.close();
}
