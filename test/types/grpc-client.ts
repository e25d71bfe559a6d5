/**
 * Type-level test, checked by `npm run typecheck` (tsconfig includes test/): `mesh.grpc.client`
 * gives the client the type `new ClientCtor(…)` would — a generated client's own type, grpc-js's
 * `ServiceClient` for a `ServiceClientConstructor`, `any` for a constructor typed `any` (a
 * package definition loaded without types, where it was `unknown` and every call needed a cast).
 * Nothing here runs.
 */
import * as grpc from '@grpc/grpc-js';
import type { Mesh } from '../../src/index.ts';

class GeneratedClient extends grpc.Client {
  hello(name: string): string {
    return name;
  }
}

export function typedClients(mesh: Mesh, untyped: grpc.GrpcObject): void {
  const generated = mesh.grpc.client(GeneratedClient, 'hello:9090');
  const greeting: string = generated.hello('world');
  // @ts-expect-error a generated client's methods keep their parameter types
  generated.hello(1);
  // @ts-expect-error and it has only its own methods
  generated.goodbye('world');

  const Echo = (untyped['demo'] as grpc.GrpcObject)['Echo'] as grpc.ServiceClientConstructor;
  const service: InstanceType<grpc.ServiceClientConstructor> = mesh.grpc.client(Echo, 'echo:9090');

  // biome-ignore lint/suspicious/noExplicitAny: what grpc.loadPackageDefinition(...) as any gives an app
  const loose: any = untyped;
  const anyClient = mesh.grpc.client(loose.demo.Echo, 'echo:9090');
  anyClient.Unary({ text: greeting }, () => undefined);
  service.close();
}
