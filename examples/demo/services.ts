/**
 * The demo's upstreams: real node:http servers on 127.0.0.1 (port 0), one per service
 * version, each answering with its version and counting its hits; and the ServiceEntries that
 * put them in the mesh registry (generated here because the ports are only known at run time).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One running version of a service. */
export interface Upstream {
  readonly service: string;
  readonly version: string;
  readonly port: number;
  /** Requests this server received (including the ones it failed). */
  hits: number;
  close(): Promise<void>;
}

/** Decides whether hit number `hit` (1-based) fails with 503; default: never. */
export type FailWhen = (hit: number) => boolean;

/** Starts one version of `service`; it answers `{"service","version"}` with `x-version`. */
export async function startUpstream(service: string, version: string, failWhen: FailWhen = () => false): Promise<Upstream> {
  const u = { service, version, port: 0, hits: 0, close: async () => undefined } as Upstream;
  const reply = (res: ServerResponse, status: number, body: object) => {
    res.writeHead(status, { 'content-type': 'application/json', 'x-version': version });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      u.hits++;
      if (failWhen(u.hits)) reply(res, 503, { service, version, error: 'flaky' });
      else reply(res, 200, { service, version });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (u as { port: number }).port = (server.address() as AddressInfo).port;
  u.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return u;
}

/**
 * A ServiceEntry for `service` in namespace `default` on port 9080, one STATIC endpoint per
 * upstream on its real port, labelled with its version (what DestinationRule subsets select).
 */
export function serviceEntryFor(service: string, upstreams: readonly Upstream[]): object {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: { name: service, namespace: 'default' },
    spec: {
      hosts: [`${service}.default.svc.cluster.local`],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }],
      endpoints: upstreams.map((u) => ({ address: '127.0.0.1', ports: { http: u.port }, labels: { app: service, version: u.version } })),
    },
  };
}
