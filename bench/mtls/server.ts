/**
 * The bench's server process: a mesh server (mesh.createServer) with a workload certificate from
 * files, PERMISSIVE, answering 100 bytes; tells the parent its port.
 */
import { createMesh } from '../../src/index.ts';

const [dir] = process.argv.slice(2) as [string];
const mesh = await createMesh({
  service: 'server',
  namespace: 'bench',
  serviceAccount: 'server',
  config: `${dir}/server-config`,
  identity: { certFile: `${dir}/server.crt`, keyFile: `${dir}/server.key`, caFile: `${dir}/root.crt` },
  logger: { warn: () => undefined, error: (m: string) => console.error(m) },
});
const body = Buffer.alloc(100, 'x');
const server = mesh.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as { port: number }).port }));
process.on('disconnect', () => void mesh.close().then(() => process.exit(0)));
