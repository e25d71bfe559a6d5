/**
 * The gRPC benchmark's server: a raw grpc-js `new grpc.Server()` answering Echo/Unary with the
 * request's text, in its own process, started by bench/grpc/run.ts over an IPC channel (it
 * reports `ready` with its port, and its call count when asked); exits when the parent goes away.
 */
import { EchoClient, grpc } from './proto.ts';

if (process.send === undefined) throw new Error('server.ts is started by bench/grpc/run.ts (needs an IPC channel)');
let calls = 0;
const server = new grpc.Server();
server.addService(EchoClient.service, {
  Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
    calls++;
    cb(null, { text: call.request.text, server: 'bench', seen: [] });
  },
});
const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
process.on('disconnect', () => process.exit(0));
process.on('message', (m: { type?: string }) => {
  if (m.type === 'counts') process.send?.({ type: 'counts', calls });
});
process.send({ type: 'ready', port });
