
import { createMesh, type Mesh, seededRandom } from '../../src/index.ts';
import { serviceEntry, virtualService } from './upstreams.ts';
export { until } from './until.ts';

const SVC = 'svc.default.svc.cluster.local';

/** Polls `cond` every 2 ms, up to 2 s of real time (a guard against a hang, not a timing assertion). */
/** `p`, or a failure naming `what` if it has not settled within 2 s of real time (a hang guard). */
export async function settle<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 2000);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

export async function meshFor(endpoints: { port: number; labels?: Record<string, string> }[], http: unknown[], extra: object[] = [], opts: object = {}): Promise<Mesh> {
  return createMesh({
    service: 'client',
    random: seededRandom(7),
    config: [serviceEntry('svc', SVC, 80, endpoints), virtualService('svc', ['svc'], http), ...extra],
    ...opts,
  });
}

