/**
 * `meshlet validate <files, dirs or ->`: prints every error, warning and analysis finding;
 * exits 1 when there are errors.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import type { ConfigIssue } from '../../config/issues.ts';
import { checkNamespaceOption, out, UsageError } from '../args.ts';
import { printable } from '../escape.ts';
import { IssueList } from '../../config/issues.ts';
import { checkDocuments } from '../../config/load-config.ts';
import { CLIENT_OPTIONS, clientTarget } from '../client.ts';
import { readInputs } from '../input.ts';
import { checkOverServed, LIVE_LABEL } from '../live-config.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';

export const validateHelp = `Usage: meshlet validate <file, dir or ->... [options]

Validates Istio resources (VirtualService, DestinationRule, ServiceEntry, WorkloadEntry,
WorkloadGroup, Sidecar, PeerAuthentication, RequestAuthentication, AuthorizationPolicy,
Telemetry, the local rate limit EnvoyFilter) and Kubernetes Services, and analyses them like
'istioctl analyze'. Other kinds (Deployments, Gateways, …) are skipped with a notice naming them.
Directories are read recursively (.yaml, .yml, .json); '-' reads standard input (issues name it
<stdin>). Prints every problem; exits 1 if any is an error, 2 on a usage mistake.
With --control-plane, the files are analysed together with the config that control plane
serves, as 'istioctl analyze' analyses files with the cluster's resources: what the files
define replaces what it serves; without files, its config alone (issues name it ${LIVE_LABEL}).

Options:
  -f, --filename <file, dir or ->  a file, directory or - to read, as 'istioctl validate -f' and
                                   'kubectl apply -f' take it (repeatable; same as naming it)
  -A, --all-namespaces             accepted as 'istioctl analyze -A' takes it: the resources of
                                   every namespace in the files are always analysed
  -n, --namespace <ns>             namespace for resources without one (default: default)
      --failure-threshold <level>  exit 1 when an issue is at this level or worse: error (the
                                   default), warning or info, as 'istioctl analyze' takes it
${OUTPUT_HELP}
      --json                       deprecated: use -o json
  -q, --quiet                      print errors only
      --control-plane <url[,url]>  analyse with what this control plane serves (needs an admin or
                                   viewer token: --token, default $MESHLET_TOKEN; --timeout, default 15s)
      --token <token>, --timeout <duration>
      --control-plane-ca <file>    the CA that verifies an https:// control plane
                                   (default: $MESHLET_CONTROL_PLANE_CA, else the system's CAs)
`;

function line(i: ConfigIssue): string {
  const level = i.level.padEnd(7);
  const code = i.code.startsWith('IST') ? `${i.code} ` : '';
  return `${level} ${code}${printable(String(i))}`;
}

/** One issue in the machine output: every field present (null when unknown). */
export function issueDocument(i: ConfigIssue) {
  return {
    level: i.level,
    code: i.code,
    file: i.file ?? null,
    line: i.line ?? null,
    resource: i.resource ?? null,
    path: i.path,
    message: i.message,
    text: String(i),
  };
}

/** Runs the command; returns the exit code. */
export async function validateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      filename: { type: 'string', short: 'f', multiple: true },
      'all-namespaces': { type: 'boolean', short: 'A' },
      namespace: { type: 'string', short: 'n' },
      'failure-threshold': { type: 'string' },
      ...OUTPUT_OPTION, json: { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' },
      ...CLIENT_OPTIONS },
  });
  if (values.help === true) {
    out(validateHelp);
    return 0;
  }
  let format = outputFormat(values.output);
  if (values.json === true) {
    if (format !== undefined && format !== 'json') throw new UsageError('meshlet validate: --json and -o yaml contradict each other');
    process.stderr.write('meshlet: --json is deprecated; use -o json\n');
    format = 'json';
  }
  const threshold = failureLevels(values['failure-threshold']);
  const inputs = [...(values.filename ?? []), ...positionals];
  const live = values['control-plane'] === undefined ? undefined : clientTarget(values);
  if (inputs.length === 0 && live === undefined) throw new UsageError('meshlet validate: name at least one file or directory (or - for standard input), or --control-plane to analyse what it serves');
  const options = { defaultNamespace: checkNamespaceOption(values.namespace) };
  const read = new IssueList();
  const docs = await readInputs(inputs, read);
  const { issues, resources } = live === undefined ? checkDocuments(docs, options, read) : await checkOverServed(docs, live, options, read);
  const shown = values.quiet === true ? issues.ofLevel('error') : issues.all;
  const n = (l: 'error' | 'warning' | 'info') => issues.ofLevel(l).length;
  const failed = threshold.some((l) => n(l) > 0);
  if (format !== undefined) {
    printDocument(format, {
      ok: !failed,
      resources: resources.length,
      summary: { errors: n('error'), warnings: n('warning'), infos: n('info') },
      issues: shown.map(issueDocument),
    });
  } else {
    for (const i of shown) out(line(i));
    out(`${n('error')} error(s), ${n('warning')} warning(s), ${n('info')} info(s); ${resources.length} valid resource(s)`);
  }
  return failed ? 1 : 0;
}

/** The levels that fail the run for `--failure-threshold` (istioctl's Error, Warning, Info; any case). */
function failureLevels(value: string | undefined): ('error' | 'warning' | 'info')[] {
  const levels = ['error', 'warning', 'info'] as const;
  const i = value === undefined ? 0 : levels.indexOf(value.toLowerCase() as (typeof levels)[number]);
  if (i === -1) throw new UsageError(`meshlet validate: --failure-threshold must be error, warning or info, got "${value}"`);
  return levels.slice(0, i + 1);
}
