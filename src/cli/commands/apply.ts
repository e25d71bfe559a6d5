/**
 * `meshlet apply -f <file|dir>`: sends resources to the control plane, which validates the
 * whole resulting config and refuses it with every issue, or stores it and pushes it.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { IssueList } from '../../config/issues.ts';
import { readSources } from '../../config/load.ts';
import { type ApplyResponse, RESOURCES_PATH } from '../../control-plane/protocol.ts';
import { out, UsageError } from '../args.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, call, clientTarget } from '../client.ts';

export const applyHelp = `Usage: meshlet apply -f <file|dir>... [options]

Creates or replaces resources on the control plane (an admin token is needed). The whole
resulting config is validated; if anything is wrong nothing changes and every issue is printed.
Resources defined in the control plane's own --config files cannot be changed this way.

Options:
  -f, --filename <file|dir>        YAML or JSON files, or directories of them (repeatable)
  -n, --namespace <ns>             namespace for resources without one
${CLIENT_HELP}
`;

/** Runs the command; returns the exit code. */
export async function applyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { filename: { type: 'string', short: 'f', multiple: true }, namespace: { type: 'string', short: 'n' }, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS },
  });
  if (values.help === true) {
    out(applyHelp);
    return 0;
  }
  const files = [...(values.filename ?? []), ...positionals];
  if (files.length === 0) throw new UsageError('meshlet apply: give -f <file|dir>');
  const target = clientTarget(values);
  const issues = new IssueList();
  const docs = await readSources(files, issues);
  if (issues.hasErrors) {
    for (const i of issues.ofLevel('error')) process.stderr.write(`error: ${String(i)}\n`);
    return 1;
  }
  if (docs.length === 0) throw new UsageError(`meshlet apply: no resources in ${files.join(', ')}`);
  const items = docs.map((d) => {
    const v = d.value as { metadata?: { namespace?: string } };
    if (values.namespace !== undefined && typeof v.metadata === 'object' && v.metadata !== null && v.metadata.namespace === undefined) {
      return { ...v, metadata: { ...v.metadata, namespace: values.namespace } };
    }
    return v;
  });
  const body = JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
  const answer = (await call(target, 'POST', RESOURCES_PATH, body)) as ApplyResponse;
  for (const w of answer.warnings) process.stderr.write(`Warning: ${w}\n`);
  for (const a of answer.applied) out(`${a.ref} ${a.action}`);
  return 0;
}
