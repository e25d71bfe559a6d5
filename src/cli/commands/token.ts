/**
 * `meshlet token`: mints a workload, admin or viewer (read-only) token with the control plane's signing key
 * (creating the key in the data directory when there is none yet).
 *
 * @module
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SERVICE_ACCOUNT, TokenAuthority } from '../../control-plane-server/auth.ts';
import { parseDuration } from '../../config/duration.ts';
import { isMeshletError } from '../../core/errors.ts';
import { out, UsageError } from '../args.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';

export const tokenHelp = `Usage: meshlet token (--service <name> [--namespace <ns>] | --admin | --viewer) [options]

Prints a token signed with the control plane's key (<data-dir>/signing-key.jwk; created when absent,
saying so on stderr: a control plane with another data dir refuses tokens of a new key).
Workloads send it as MESHLET_TOKEN; admin tokens are for 'meshlet apply | get | delete'; viewer
tokens may only read (get, status, analyze --control-plane, ca show, GET /v1/workloads).
With -o json|yaml: the token with its decoded header and claims. Exits 2 on a usage mistake.

Options:
      --service <name>     the workload's service
  -n, --namespace <ns>     the workload's namespace (default: default)
      --service-account <sa>
                           the workload's service account: its certificate's identity is
                           spiffe://<trust domain>/ns/<ns>/sa/<sa> (default: default)
      --label <key=value>  a label of the workload the token proves (repeatable); the control
                           plane sends the workload the policies that select these labels
                           (and app=<service>), whatever labels the workload claims
      --admin              an admin token instead
      --viewer             a read-only token instead: the config, the status, the workload
                           list and the CA; no apply, delete, CA rotation or certificate
      --ttl <duration>     lifetime, e.g. 24h, 30d (default 1 year)
      --data-dir <dir>     where the signing key is (default ./.meshlet)
${OUTPUT_HELP}
`;

function parseTtl(text: string): number {
  const days = /^(\d+(?:\.\d+)?)d$/.exec(text);
  const ms = days !== null ? Number(days[1]) * 86_400_000 : parseDuration(text);
  if (typeof ms !== 'number') throw new UsageError(`--ttl: ${ms.error}`);
  if (ms < 1000) throw new UsageError(`--ttl: must be at least 1s, got "${text}"`);
  return Math.round(ms / 1000);
}

/** Runs the command; returns the exit code. */
export async function tokenCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      service: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      'service-account': { type: 'string' },
      label: { type: 'string', multiple: true },
      admin: { type: 'boolean' },
      viewer: { type: 'boolean' },
      ttl: { type: 'string' },
      'data-dir': { type: 'string' },
      ...OUTPUT_OPTION,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(tokenHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  if (positionals.length > 0) throw new UsageError(`meshlet token: unexpected argument "${positionals[0]}"`);
  const role = values.admin === true ? 'admin' : values.viewer === true ? 'viewer' : undefined;
  const given = [values.service !== undefined && '--service', values.admin === true && '--admin', values.viewer === true && '--viewer'].filter((g) => g !== false);
  if (given.length !== 1) throw new UsageError(`meshlet token: give one of --service <name>, --admin or --viewer${given.length > 1 ? `, not ${given.join(' and ')}` : ''}`);
  for (const [option, value] of [
    ['--namespace', values.namespace],
    ['--service-account', values['service-account']],
    ['--label', values.label],
  ] as const) {
    if (role !== undefined && value !== undefined) throw new UsageError(`meshlet token: ${option} goes with --service, not --${role}`);
  }
  const labels: Record<string, string> = {};
  for (const pair of values.label ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label: expected key=value, got "${pair}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const ttlSeconds = values.ttl === undefined ? undefined : parseTtl(values.ttl);
  const dataDir = values['data-dir'] ?? '.meshlet';
  const auth = await TokenAuthority.open(dataDir);
  if (auth.createdKeyFile !== undefined) {
    // A token signed with a key no control plane has is refused by all of them ("signed by another key?").
    process.stderr.write(
      `meshlet token: no signing key in ${resolve(dataDir)}: created a new one, ${resolve(auth.createdKeyFile)}. A control plane started with another --data-dir will refuse this token; give the control plane's --data-dir (default ./.meshlet where it runs).\n`,
    );
  }
  const subject = role === 'admin' ? ({ admin: true } as const) : role === 'viewer' ? ({ viewer: true } as const) : { service: values.service!, namespace: values.namespace ?? 'default', labels, serviceAccount: values['service-account'] ?? DEFAULT_SERVICE_ACCOUNT };
  let token: string;
  try {
    token = await auth.mintToken(subject, { ttlSeconds });
  } catch (err) {
    if (isMeshletError(err, 'MESHLET_ERR_INVALID_ARG')) throw new UsageError(`meshlet ${err.message}`);
    throw err;
  }
  if (format === undefined) {
    out(token);
    return 0;
  }
  // A JWT is base64url(header).base64url(claims).signature; the token was just minted here.
  const [header, claims] = token.split('.', 2).map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))) as [Record<string, unknown>, { iat: number; exp: number }];
  printDocument(format, {
    token,
    subject:
      role !== undefined
        ? { role, admin: role === 'admin', service: null, namespace: null, serviceAccount: null, labels: null }
        : { role: 'workload', admin: false, service: subject.service, namespace: subject.namespace, serviceAccount: subject.serviceAccount, labels: subject.labels },
    issuedAt: new Date(claims.iat * 1000).toISOString(),
    expiresAt: new Date(claims.exp * 1000).toISOString(),
    keyId: auth.keyId,
    header,
    claims,
  });
  return 0;
}
