/** The Reviews service of reviews.proto, loaded with @grpc/proto-loader (the client and the server share it). */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const definition = protoLoader.loadSync(fileURLToPath(new URL('./reviews.proto', import.meta.url)), { keepCase: true, defaults: true });
const loaded = grpc.loadPackageDefinition(definition) as unknown as { reviews: { Reviews: grpc.ServiceClientConstructor } };

/** The generated client class (also carries the service definition for a server). */
export const ReviewsClient = loaded.reviews.Reviews;

export interface ReviewRequest {
  product_id: number;
}
export interface Review {
  product_id: number;
  text: string;
  stars: number;
  version: string;
}

export { grpc };
