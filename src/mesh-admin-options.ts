/**
 * The `admin` option of `createMesh`: a read-only admin endpoint for operators, modelled on the
 * admin port (15000) of Envoy in an Istio sidecar. Its options, their checks, and the handle a
 * mesh keeps of the running endpoint (the server itself is in `mesh-admin.ts`).
 *
 * @module
 */
import { isLoopback } from './control-plane/probe-hosts.ts';
import { InvalidArgumentError } from './core/errors.ts';
import { checkOptionNames, optionNames } from './core/option-names.ts';

/**
 * The admin endpoint of a mesh ({@link MeshOptions.admin}): `/clusters`, `/config_dump`, `/certs`,
 * `/server_info`, `/ready`, `/stats` (Envoy's counters) and `/explain`, read-only, as `istioctl proxy-config` reads a
 * sidecar's (`meshlet proxy-config`). See docs/admin.md.
 * @category Mesh
 */
export interface AdminOptions {
  /** The port; 0 picks a free one ({@link Mesh.adminUrl} says which). @defaultValue 15000 (Envoy's admin port in an Istio sidecar) */
  readonly port?: number | undefined;
  /**
   * The address it listens on. Loopback by default, as the sidecar's admin: only the pod (or
   * `kubectl port-forward`) reaches it. Any other address needs {@link AdminOptions.allowNonLoopback}.
   * @defaultValue '127.0.0.1'
   */
  readonly host?: string | undefined;
  /**
   * Listen on a `host` that is not a loopback address (`0.0.0.0`, a pod IP). Everyone who can
   * reach it then sees this workload's config, endpoints and certificate details (never a private
   * key) and, on `/tap`, its requests as they happen (methods, hosts, paths); a warning says so
   * when it starts.
   * @defaultValue false
   */
  readonly allowNonLoopback?: boolean | undefined;
}

/** The names of {@link AdminOptions}, checked against the type. @internal */
export const ADMIN_OPTION_NAMES = optionNames<AdminOptions>()(['port', 'host', 'allowNonLoopback']);

/** The admin endpoint's settings, defaults applied. @internal */
export interface AdminSettings {
  readonly port: number;
  readonly host: string;
  readonly loopback: boolean;
}

/** The admin endpoint a mesh runs: its URL, and what `mesh.close()` tells it. @internal */
export interface AdminHandle {
  /** `http://127.0.0.1:15000` */
  readonly url: string;
  /** The mesh started to close: `/ready` answers 503 DRAINING from now on. */
  draining(): void;
  /** Stops listening and ends its connections. */
  close(): Promise<void>;
}

/** Checks `createMesh`'s `admin` option; undefined when there is no admin endpoint. */
export function adminSettings(v: unknown): AdminSettings | undefined {
  if (v === undefined || v === false) return undefined;
  if (v !== true && (v === null || typeof v !== 'object' || Array.isArray(v))) throw new InvalidArgumentError(`createMesh: \`admin\` must be true or an object ({ port, host, allowNonLoopback }), got ${JSON.stringify(v)}`);
  const o: AdminOptions = v === true ? {} : (v as AdminOptions);
  checkOptionNames('createMesh', o, ADMIN_OPTION_NAMES, 'admin.');
  const port = o.port ?? 15000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`createMesh: \`admin.port\` must be an integer 0..65535 (0: any free port), got ${JSON.stringify(o.port)}`);
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw new InvalidArgumentError(`createMesh: \`admin.host\` must be a non-empty address, got ${JSON.stringify(o.host)}`);
  if (o.allowNonLoopback !== undefined && typeof o.allowNonLoopback !== 'boolean') throw new InvalidArgumentError(`createMesh: \`admin.allowNonLoopback\` must be true or false, got ${JSON.stringify(o.allowNonLoopback)}`);
  const loopback = isLoopback(host);
  if (!loopback && o.allowNonLoopback !== true) {
    throw new InvalidArgumentError(
      `createMesh: \`admin.host\` "${host}" is not a loopback address: the admin endpoint would show this workload's config, endpoints and certificate details to anyone who can reach it. Keep the default 127.0.0.1 (and use kubectl port-forward), or set \`admin.allowNonLoopback: true\` to listen there anyway`,
    );
  }
  return { port, host, loopback };
}
