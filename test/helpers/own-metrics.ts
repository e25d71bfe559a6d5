/**
 * Shared by the own-metrics tests: the service and cluster they call, and upstreams that are
 * closed after the test file.
 */
import { after } from 'node:test';
import { startUpstream, type Upstream } from './upstreams.ts';

export const SVC = 'svc.default.svc.cluster.local';
export const CLUSTER = `outbound|80||${SVC}`;

const ups: Upstream[] = [];
after(async () => {
  await Promise.all(ups.map((u) => u.close()));
});

export async function upstream(name: string, behaviour?: Parameters<typeof startUpstream>[1]): Promise<Upstream> {
  const u = await startUpstream(name, behaviour);
  ups.push(u);
  return u;
}
