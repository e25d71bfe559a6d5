/**
 * Records what the mesh asks of TCP keepalive: every `socket.setKeepAlive(…)` call (its
 * arguments as passed) on any socket of this process while `fn` runs (those `which` accepts).
 */
import { Socket } from 'node:net';

export async function keepAliveCalls(fn: () => Promise<void>, which: (socket: Socket) => boolean = () => true): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  const original = Socket.prototype.setKeepAlive;
  Socket.prototype.setKeepAlive = function (this: Socket, ...args: unknown[]) {
    if (which(this)) calls.push(args);
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof original;
  try {
    await fn();
  } finally {
    Socket.prototype.setKeepAlive = original;
  }
  return calls;
}
