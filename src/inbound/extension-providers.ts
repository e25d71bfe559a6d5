/**
 * MeshConfig `extensionProviders`: the entry type and the one check of an entry that
 * `createMesh` (which then builds the authorizers, policies.ts) and the CLI's `--mesh-config`
 * (which only judges) both run, so both refuse the same lists with the same words. As Istio's
 * `validateExtensionProvider` (pkg/config/validation/agent/extensionprovider.go): a name that is
 * empty or used twice (by providers of any kind), a provider that is not exactly one known kind,
 * and a kind's settings Istio (or Envoy) would refuse.
 *
 * @module
 */
import { checkEnvoyFileAccessLog, type EnvoyFileAccessLogProvider } from '../telemetry/access-log/config.ts';
import { checkEnvoyOtelAls, type EnvoyOtelAlsProvider } from '../telemetry/access-log/otel-config.ts';
import { checkEnvoyHttpAls, checkEnvoyTcpAls, type EnvoyHttpAlsProvider, type EnvoyTcpAlsProvider } from '../telemetry/access-log/als-config.ts';
import { suggest } from '../core/did-you-mean.ts';
import { checkEnvoyExtAuthzHttp, type EnvoyExtAuthzHttpConfig } from '../security/authz/ext-authz-http.ts';
import { checkEnvoyExtAuthzGrpc, type EnvoyExtAuthzGrpcConfig } from '../security/authz/ext-authz-grpc.ts';

/**
 * A MeshConfig `extensionProviders` entry, as written in Istio's mesh config: a name and one
 * provider. meshlet runs `envoyExtAuthzHttp` and `envoyExtAuthzGrpc` providers (AuthorizationPolicy `CUSTOM`) and
 * `envoyFileAccessLog`, `envoyOtelAls` and `envoyHttpAls` providers (Telemetry `accessLogging`; `envoy` is built in), and records
 * metrics for `prometheus` ones. Istio's other kinds (tracing, `envoyTcpAls`, `stackdriver`)
 * are accepted, so that Istio's MeshConfig (whose defaults hold `prometheus` and `stackdriver`)
 * can be given as it is, and not run (`logger.info` says so).
 * @category Server
 */
export interface ExtensionProvider {
  readonly name: string;
  readonly envoyExtAuthzHttp?: EnvoyExtAuthzHttpConfig | undefined;
  readonly envoyExtAuthzGrpc?: EnvoyExtAuthzGrpcConfig | undefined;
  readonly envoyFileAccessLog?: EnvoyFileAccessLogProvider | undefined;
  readonly prometheus?: object | undefined;
  readonly stackdriver?: object | undefined;
  readonly zipkin?: object | undefined;
  readonly lightstep?: object | undefined;
  readonly datadog?: object | undefined;
  readonly opencensus?: object | undefined;
  readonly skywalking?: object | undefined;
  readonly opentelemetry?: object | undefined;
  readonly envoyOtelAls?: EnvoyOtelAlsProvider | undefined;
  readonly envoyHttpAls?: EnvoyHttpAlsProvider | undefined;
  /** Checked as Istio checks it; meshlet proxies no TCP connections, so nothing is sent to it. */
  readonly envoyTcpAls?: EnvoyTcpAlsProvider | undefined;
}

/** The kinds meshlet runs (or reads: `prometheus`, by the metrics). */
const RUN_KINDS = ['envoyExtAuthzHttp', 'envoyExtAuthzGrpc', 'envoyFileAccessLog', 'envoyOtelAls', 'envoyHttpAls', 'prometheus'];
/** Istio's other provider kinds (MeshConfig `ExtensionProvider.provider`): accepted, not run. */
export const OTHER_KINDS: readonly string[] = ['stackdriver', 'zipkin', 'lightstep', 'datadog', 'opencensus', 'skywalking', 'opentelemetry', 'envoyTcpAls'];

/** The message for an `extensionProviders` that is not a list. */
export const NOT_A_LIST = 'createMesh: `extensionProviders` must be a list of { name, envoyExtAuthzHttp | envoyExtAuthzGrpc | envoyFileAccessLog | envoyOtelAls | envoyHttpAls } (MeshConfig extensionProviders)';

/** The one kind of provider `p` (Istio's `provider` is a oneof), or the problem: none, several or an unknown one. */
function kindOf(p: ExtensionProvider, where: string): { kind: string } | { problem: string } {
  const kinds = Object.keys(p).filter((k) => k !== 'name' && (p as unknown as Record<string, unknown>)[k] !== undefined);
  const known = [...RUN_KINDS, ...OTHER_KINDS];
  if (kinds.length === 1 && known.includes(kinds[0] as string)) return { kind: kinds[0] as string };
  const unknown = kinds.find((k) => !known.includes(k));
  if (unknown !== undefined) return { problem: `${where} (${p.name}): unknown provider kind "${unknown}"${suggest(unknown, known)}; meshlet runs envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog, envoyOtelAls and envoyHttpAls providers` };
  return { problem: `${where} (${p.name}): a provider has exactly one kind (envoyExtAuthzHttp, envoyExtAuthzGrpc, envoyFileAccessLog, envoyOtelAls, …), got ${kinds.length === 0 ? 'none' : kinds.join(', ')}` };
}

/** The settings check of each kind meshlet runs. */
const CHECKS: Readonly<Record<string, (config: never) => string[]>> = {
  envoyExtAuthzHttp: checkEnvoyExtAuthzHttp,
  envoyExtAuthzGrpc: checkEnvoyExtAuthzGrpc,
  envoyFileAccessLog: checkEnvoyFileAccessLog,
  envoyOtelAls: checkEnvoyOtelAls,
  envoyHttpAls: checkEnvoyHttpAls,
  envoyTcpAls: checkEnvoyTcpAls,
};

/**
 * Checks entry `i` of `extensionProviders` (`names`: the names of the entries before it, to
 * which its name is added): its kind, or the first problem, as createMesh words it
 * (`createMesh: extensionProviders[1]: provider name "x" is used twice`).
 */
export function checkExtensionProvider(p: unknown, i: number, names: Set<string>): { kind: string } | { problem: string } {
  const where = `createMesh: extensionProviders[${i}]`;
  const e = p as ExtensionProvider | null;
  if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || e.name === '') return { problem: `${where}: \`name\` must be a non-empty string` };
  if (names.has(e.name)) return { problem: `${where}: provider name ${JSON.stringify(e.name)} is used twice` };
  names.add(e.name);
  const k = kindOf(e, where);
  if ('problem' in k) return k;
  const check = CHECKS[k.kind];
  const problems = check === undefined ? [] : check((e as unknown as Record<string, never>)[k.kind] as never);
  return problems.length > 0 ? { problem: `${where} (${e.name}).${k.kind}: ${problems.join('; ')}` } : k;
}

/**
 * The entries of a MeshConfig's `extensionProviders` a mesh can use, and a warning naming each
 * other one. istiod loads a MeshConfig whose providers fail validation and only warns ("found
 * invalid extension provider (can be ignored if the given extension provider is not used)":
 * pkg/config/validation/agent/validation.go `ValidateMeshConfig` → extensionprovider.go
 * `validateExtensionProvider`), then builds nothing from such a provider: a CUSTOM policy naming
 * it denies what it matches (pilot/pkg/security/authz/builder/builder.go: "will generate deny
 * configs"). What istiod cannot load at all — a list that is not a list, a provider with two kinds
 * (a oneof set twice: protomarshal.ApplyYAML fails) — stays a refusal: `fatal`.
 */
export function usableExtensionProviders(list: unknown): { providers: unknown[] | undefined; warnings: string[]; fatal: string[] } {
  if (list === undefined) return { providers: undefined, warnings: [], fatal: [] };
  if (!Array.isArray(list)) return { providers: undefined, warnings: [], fatal: [NOT_A_LIST] };
  const names = new Set<string>();
  const providers: unknown[] = [];
  const warnings: string[] = [];
  const fatal: string[] = [];
  list.forEach((p, i) => {
    const r = checkExtensionProvider(p, i, names);
    if (!('problem' in r)) {
      providers.push(p);
      return;
    }
    const kinds = p !== null && typeof p === 'object' ? Object.keys(p).filter((k) => k !== 'name' && (p as Record<string, unknown>)[k] !== undefined) : [];
    const known = [...RUN_KINDS, ...OTHER_KINDS];
    if (kinds.length > 1 && kinds.every((k) => known.includes(k))) fatal.push(r.problem);
    else warnings.push(`${r.problem.replace(/^createMesh: /, '')} — istiod only warns about it; this provider is not used (a CUSTOM policy naming it denies what it matches, a Telemetry naming it sends nothing to it)`);
  });
  return { providers, warnings, fatal };
}
