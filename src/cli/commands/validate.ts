/**
 * `meshlet validate <files or dirs...>`: prints every error, warning and analysis finding;
 * exits 1 when there are errors.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../../config/load-config.ts';
import type { ConfigIssue } from '../../config/issues.ts';
import { out, UsageError } from '../args.ts';

export const validateHelp = `Usage: meshlet validate <file or dir>... [options]

Validates Istio resources (VirtualService, DestinationRule, ServiceEntry, WorkloadEntry,
PeerAuthentication, RequestAuthentication, AuthorizationPolicy, Telemetry) and analyses them
like 'istioctl analyze'. Prints every problem; exits 1 if any is an error.

Options:
  -n, --namespace <ns>   namespace for resources without one (default: default)
      --json             print the issues as JSON
  -q, --quiet            print errors only
`;

function line(i: ConfigIssue): string {
  const level = i.level.padEnd(7);
  const code = i.code.startsWith('IST') ? `${i.code} ` : '';
  return `${level} ${code}${String(i)}`;
}

/** Runs the command; returns the exit code. */
export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    out(validateHelp);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('meshlet validate: name at least one file or directory');
  const { issues, resources } = await loadConfig(positionals, { defaultNamespace: values.namespace });
  const shown = values.quiet === true ? issues.ofLevel('error') : issues.all;
  if (values.json === true) {
    out(JSON.stringify({ resources: resources.length, issues: shown.map((i) => ({ ...i, text: String(i) })) }, null, 2));
  } else {
    for (const i of shown) out(line(i));
    const n = (l: 'error' | 'warning' | 'info') => issues.ofLevel(l).length;
    out(`${n('error')} error(s), ${n('warning')} warning(s), ${n('info')} info(s); ${resources.length} valid resource(s)`);
  }
  return issues.hasErrors ? 1 : 0;
}
