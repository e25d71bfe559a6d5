/**
 * `meshlet delete <kind> <name> [-n ns]`: deletes a resource applied through the control plane.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { resolveKind } from '../../control-plane-server/kinds.ts';
import { RESOURCES_PATH } from '../../control-plane/protocol.ts';
import { out, UsageError } from '../args.ts';
import { printable } from '../escape.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, call, clientTarget } from '../client.ts';
import { DELETE_SHAPE } from '../answer-shapes.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { WAIT_HELP, WAIT_OPTIONS, waitAfterChange, waitOption } from '../wait.ts';
import { unknownKind } from './get.ts';

export const deleteHelp = `Usage: meshlet delete <kind> <name> [-n <ns>] [options]

Deletes a resource that was created with 'meshlet apply' (an admin token is needed).
Kinds are case-insensitive; short names: vs, dr, se, we, pa, ra, ap.
Exits 1 when the resource does not exist or the control plane refuses, 2 on a usage mistake.

Options:
  -n, --namespace <ns>             the resource's namespace (default: default)
${WAIT_HELP}
${OUTPUT_HELP}
${CLIENT_HELP}
`;

/** Runs the command; returns the exit code. */
export async function deleteCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, ...OUTPUT_OPTION, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS, ...WAIT_OPTIONS },
  });
  if (values.help === true) {
    out(deleteHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  const waitMs = waitOption(values);
  if (positionals.length !== 2) throw new UsageError('meshlet delete: give <kind> <name>');
  const [kindText, name] = positionals as [string, string];
  const kind = resolveKind(kindText);
  if (kind === undefined) throw new UsageError(unknownKind('delete', kindText));
  const ns = values.namespace ?? 'default';
  const target = clientTarget(values);
  const answer = (await call(target, 'DELETE', `${RESOURCES_PATH}/${kind}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, undefined, undefined, DELETE_SHAPE)) as { version: string; warnings?: string[] };
  const ref = `${kind} ${ns}/${name}`;
  // What the deletion breaks (a VirtualService routing to the deleted rule's subsets: IST0101), on stderr as apply prints it; an older control plane sends none.
  const warnings = answer.warnings ?? [];
  for (const w of warnings) process.stderr.write(`Warning: ${printable(w)}\n`);
  if (format === undefined) out(`${ref} deleted`);
  await waitAfterChange(target, answer.version, waitMs, (distributed, line) => {
    if (format !== undefined) printDocument(format, { version: answer.version, deleted: { ref, kind, namespace: ns, name }, warnings, ...(distributed === undefined ? {} : { distributed }) });
    else if (line !== undefined) out(line);
  });
  return 0;
}
