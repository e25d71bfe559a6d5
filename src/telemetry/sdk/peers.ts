/**
 * The OpenTelemetry SDK packages `meshlet/telemetry` uses are optional peer dependencies, imported
 * only when something needs them (never when `meshlet/telemetry` itself is imported): a missing
 * one is reported with every other missing one, and the `npm install` line that installs them.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.ts';

/** A package, and how to import it (a literal `import('…')`, so its types are the package's). */
export type PeerLoader<T = unknown> = readonly [name: string, load: () => Promise<T>];

type Loaded<L extends readonly PeerLoader[]> = { -readonly [K in keyof L]: L[K] extends PeerLoader<infer T> ? T : never };

/** Whether `e` says that `name` itself is not installed (not one of its dependencies). */
function notInstalled(e: unknown, name: string): boolean {
  return (e as { code?: unknown }).code === 'ERR_MODULE_NOT_FOUND' && String((e as Error).message).includes(`'${name}'`);
}

/**
 * Imports every package of `peers` side by side. When some are not installed: an
 * {@link InvalidArgumentError} from `who` naming all of them and the `npm install` command
 * (`hint`, when given, is appended). Any other failure (a missing dependency of an installed
 * package included) is rethrown as it is.
 */
export async function loadPeers<const L extends readonly PeerLoader[]>(who: string, peers: L, hint?: string): Promise<Loaded<L>> {
  const settled = await Promise.allSettled(peers.map(([, load]) => load()));
  const missing: string[] = [];
  for (const [i, r] of settled.entries()) {
    if (r.status === 'fulfilled') continue;
    const name = (peers[i] as PeerLoader)[0];
    if (!notInstalled(r.reason, name)) throw r.reason;
    missing.push(name);
  }
  if (missing.length > 0) {
    const names = missing.length === 1 ? (missing[0] as string) : `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)}`;
    throw new InvalidArgumentError(
      `${who} needs ${names}, which ${missing.length === 1 ? 'is' : 'are'} not installed (optional peer dependencies of meshlet); install ${missing.length === 1 ? 'it' : 'them'} next to meshlet: npm install ${missing.join(' ')}${hint === undefined ? '' : `; ${hint}`}`,
    );
  }
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as Loaded<L>;
}
