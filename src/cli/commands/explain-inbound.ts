/**
 * `meshlet explain <config> --service s --inbound [-X method] [-H 'name: value'] <path or url>`:
 * how the workload's server side would judge one request on its way in — the normalized path,
 * RequestAuthentication (tokens decoded without verification, keys never fetched), which
 * AuthorizationPolicy and rule decide it, dry-run and audit, CUSTOM providers it would ask, and
 * the local rate limit bucket it would draw from. Nothing is sent.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.ts';
import { explainInbound, type InboundExplainRequest, type InboundExplanation } from '../../inbound/explain.ts';
import { PATH_NORMALIZATIONS, type PathNormalization } from '../../core/path-normalization.ts';
import { parseJwt } from '../../security/jwt/token.ts';
import { statusText } from '../../security/jwt/status.ts';
import { out, UsageError } from '../args.ts';
import { printable } from '../escape.ts';
import { loadInputs, refuseInvalidConfig, reportAdvisories } from '../input.ts';
import { inboundGrpcVerdict } from './explain-grpc.ts';
import { type OutputFormat, printDocument } from '../output.ts';
import { inboundExplanationView } from '../views.ts';
import type { MeshOptions } from '../../mesh-options.ts';
import { extensionProviderNames } from '../mesh-config-file.ts';

/** The options of `explain` that only the inbound mode reads (with their help lines). */
export const INBOUND_OPTIONS = {
  inbound: { type: 'boolean' },
  port: { type: 'string' },
  principal: { type: 'string' },
  'source-namespace': { type: 'string' },
  'source-sa': { type: 'string' },
  'source-ip': { type: 'string' },
  token: { type: 'string' },
  'request-principal': { type: 'string' },
  claim: { type: 'string', multiple: true },
  'root-namespace': { type: 'string' },
  'trust-domain': { type: 'string' },
  'path-normalization': { type: 'string' },
  'extension-provider': { type: 'string', multiple: true },
  'probe-path': { type: 'string', multiple: true },
} as const;

export const INBOUND_HELP = `Inbound (--inbound): how the workload --service judges a request on its way in
  (path normalization, RequestAuthentication, AuthorizationPolicy, local rate limit).
  The last argument is the request target as the server receives it (/admin?x=1), or a URL
  (http://httpbin.foo:8000/admin: its authority is the Host, its port the service port).
      --inbound                    explain the workload's server side instead of a call it makes
      --port <n>                   the local port the request arrives on (default: the target
                                   port of the URL's service port, else the only port the
                                   workload's services reach, else 80)
      --principal <id>             the caller's mTLS identity, e.g. cluster.local/ns/foo/sa/sleep
                                   (default: a plaintext caller)
      --source-namespace <ns>      instead of --principal: <trust domain>/ns/<ns>/sa/<--source-sa>
      --source-sa <sa>             with --source-namespace (default: default)
      --source-ip <ip>             the caller's address (default: 127.0.0.1)
      --token <jwt>                a JWT sent as 'Authorization: Bearer' (decoded WITHOUT
                                   verification for the explanation; keys are never fetched)
      --request-principal <iss/sub>  the end user, given directly instead of a token
      --claim <name=value>         a claim of that user (repeatable; a value starting with [ or {
                                   is JSON, e.g. --claim 'groups=["admins"]')
      --root-namespace <ns>        the namespace whose policies apply mesh-wide (default: istio-system)
      --trust-domain <td>          MeshConfig trustDomain (default: cluster.local)
      --path-normalization <mode>  BASE (default), MERGE_SLASHES, DECODE_AND_MERGE_SLASHES, NONE
      --extension-provider <name>  a provider configured for CUSTOM policies (repeatable; default:
                                   every provider a CUSTOM policy names is taken as configured)
      --probe-path <path>          a health-probe path of the workload (its createMesh probePaths,
                                   repeatable; /grpc.health.v1.Health/Check for a gRPC probe)
`;

type InboundValues = { [K in keyof typeof INBOUND_OPTIONS]?: (typeof INBOUND_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof INBOUND_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** The inbound-only options given without `--inbound`: a usage mistake. */
export function strayInboundOptions(values: InboundValues): string[] {
  return Object.keys(INBOUND_OPTIONS).filter((k) => k !== 'inbound' && values[k as keyof InboundValues] !== undefined);
}

function parseClaims(values: readonly string[] | undefined): Record<string, unknown> | undefined {
  if (values === undefined) return undefined;
  const claims: Record<string, unknown> = Object.create(null);
  for (const c of values) {
    const eq = c.indexOf('=');
    if (eq <= 0) throw new UsageError(`--claim: expected name=value, got "${c}"`);
    const name = c.slice(0, eq);
    const text = c.slice(eq + 1);
    let value: unknown = text;
    if (text.startsWith('[') || text.startsWith('{')) {
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new UsageError(`--claim ${name}: the value starts like JSON but is not: ${(err as Error).message}`);
      }
    }
    claims[name] = value;
  }
  return claims;
}

function parsePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) throw new UsageError(`--port: expected a port number 1-65535, got "${text}"`);
  return Number(text);
}

/** What the inbound mode needs from the command line. */
export interface InboundArgs {
  readonly values: InboundValues & { readonly service: string; readonly namespace: string };
  readonly labels: Record<string, string>;
  readonly method: string;
  readonly headers: Record<string, string | string[]>;
  readonly configs: readonly string[];
  readonly target: string;
  readonly format: OutputFormat | undefined;
  /** The request is a gRPC call (grpc:// target): the verdict is also given as a gRPC status. */
  readonly grpc?: boolean;
  /** `--mesh-config`'s settings: the defaults of --root-namespace, --trust-domain, --path-normalization and --extension-provider. */
  readonly meshConfig?: MeshOptions | undefined;
}

/** Runs `explain --inbound`; returns the exit code. */
export async function explainInboundCommand(a: InboundArgs): Promise<number> {
  const v = a.values;
  const normalization = v['path-normalization'];
  if (normalization !== undefined && !(PATH_NORMALIZATIONS as readonly string[]).includes(normalization)) {
    throw new UsageError(`--path-normalization: expected ${PATH_NORMALIZATIONS.join(', ')}, got "${normalization}"`);
  }
  if (v.principal !== undefined && v['source-namespace'] !== undefined) throw new UsageError('give the caller as --principal or as --source-namespace [--source-sa], not both');
  if (v['source-sa'] !== undefined && v['source-namespace'] === undefined) throw new UsageError('--source-sa needs --source-namespace');
  if (v.token !== undefined) {
    const parsed = parseJwt(v.token);
    if (!parsed.ok) throw new UsageError(`--token: not a JWT: ${statusText(parsed.status)} (to explain a request with a malformed token, send it with -H 'authorization: Bearer …')`);
    if (v['request-principal'] !== undefined || v.claim !== undefined) throw new UsageError('give either --token or --request-principal/--claim, not both');
  }
  if (!a.target.startsWith('/') && !/^https?:\/\//i.test(a.target)) {
    throw new UsageError(`meshlet explain --inbound: the last argument must be the request target (/path?query) or URL (http://host[:port]/path), got "${a.target}"`);
  }
  const request: InboundExplainRequest = {
    method: a.method,
    url: a.target,
    headers: a.headers,
    port: parsePort(v.port),
    source: { principal: v.principal, namespace: v['source-namespace'], serviceAccount: v['source-sa'], ip: v['source-ip'] },
    token: v.token,
    requestPrincipal: v['request-principal'],
    claims: parseClaims(v.claim),
  };
  const loaded = await loadInputs(a.configs, { defaultNamespace: v.namespace });
  const { ok, issues, resources } = loaded;
  if (!ok) return refuseInvalidConfig(issues.ofLevel('error'));
  // Warnings (what meshlet does not apply) and findings are advisory (a mesh applies this config, as Istio does): report them, then answer.
  reportAdvisories(loaded);
  let e: InboundExplanation;
  try {
    e = await explainInbound(resources, request, {
      workload: { service: v.service, namespace: v.namespace, labels: a.labels },
      rootNamespace: v['root-namespace'] ?? a.meshConfig?.rootNamespace,
      trustDomain: v['trust-domain'] ?? a.meshConfig?.trustDomain,
      trustDomainAliases: a.meshConfig?.trustDomainAliases,
      pathNormalization: (normalization as PathNormalization | undefined) ?? a.meshConfig?.pathNormalization,
      extensionProviders: v['extension-provider'] ?? extensionProviderNames(a.meshConfig),
      probePaths: v['probe-path'],
    });
  } catch (err) {
    // Everything explainInbound refuses is about the request described on the command line.
    if (err instanceof InvalidArgumentError) throw new UsageError(err.message.replace(/^explainInbound: /, 'meshlet explain --inbound: '));
    throw err;
  }
  if (a.format !== undefined) {
    printDocument(a.format, a.grpc === true ? { ...inboundExplanationView(e), grpcVerdict: inboundGrpcVerdict(e.status) } : inboundExplanationView(e));
    return 0;
  }
  for (const line of String(e).split('\n')) out(printable(line));
  if (a.grpc === true) out(`gRPC caller:   ${inboundGrpcVerdict(e.status)}`);
  return 0;
}
