/**
 * Records what the mesh asks of TCP keepalive: every `socket.setKeepAlive(…)` call (its
 * arguments as passed) on any socket of this process while `fn` runs.
 */
import { Socket } from 'node:net';

export async function keepAliveCalls(fn: () => Promise<void>): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  const original = Socket.prototype.setKeepAlive;
  Socket.prototype.setKeepAlive = function (this: Socket, ...args: unknown[]) {
    calls.push(args);
    return (original as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof original;
  try {
    await fn();
  } finally {
    Socket.prototype.setKeepAlive = original;
  }
  return calls;
}
