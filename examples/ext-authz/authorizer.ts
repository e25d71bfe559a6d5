/**
 * An external authorizer speaking Envoy's gRPC API (`envoy.service.auth.v3.Authorization/Check`):
 * a Node port of Istio's sample (samples/extauthz): a request carrying `x-ext-authz: allow` is
 * allowed, and the authorizer adds `x-ext-authz-check-result: allowed` to it; anything else is
 * denied with 403 and a body saying why. OPA's Envoy plugin, or any Envoy ext_authz server, can
 * stand in its place.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

interface CheckRequest {
  attributes: { request: { http: { method: string; path: string; host: string; headers: Record<string, string> } } };
}

const DENY_BODY = 'denied by ext_authz for not found header `x-ext-authz: allow` in the request';
const header = (key: string, value: string) => ({ header: { key, value } });

function check(call: grpc.ServerUnaryCall<CheckRequest, unknown>, callback: grpc.sendUnaryData<unknown>): void {
  const http = call.request.attributes.request.http;
  const received = `${http.method} ${http.host}${http.path}`;
  if (http.headers['x-ext-authz'] === 'allow') {
    callback(null, { status: { code: grpc.status.OK }, ok_response: { headers: [header('x-ext-authz-check-result', 'allowed'), header('x-ext-authz-check-received', received)] } });
  } else {
    callback(null, {
      status: { code: grpc.status.PERMISSION_DENIED },
      denied_response: { status: { code: 403 }, body: DENY_BODY, headers: [header('x-ext-authz-check-result', 'denied')] },
    });
  }
}

/** Starts the authorizer on 127.0.0.1 (`port` 0: a free one); resolves with the server and its port. */
export async function startAuthorizer(port = 0): Promise<{ server: grpc.Server; port: number }> {
  const definition = protoLoader.loadSync(new URL('./ext-authz.proto', import.meta.url).pathname, { keepCase: true, longs: Number, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: { service: grpc.ServiceDefinition } } } } } };
  const server = new grpc.Server();
  server.addService(pkg.envoy.service.auth.v3.Authorization.service, { Check: check });
  const bound = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port: bound };
}
