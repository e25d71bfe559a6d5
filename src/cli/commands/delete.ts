/**
 * `meshlet delete <kind> <name> [-n ns]`: deletes a resource applied through the control plane.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { resolveKind } from '../../control-plane-server/kinds.ts';
import { RESOURCES_PATH } from '../../control-plane/protocol.ts';
import { out, UsageError } from '../args.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, call, clientTarget } from '../client.ts';

export const deleteHelp = `Usage: meshlet delete <kind> <name> [-n <ns>] [options]

Deletes a resource that was created with 'meshlet apply' (an admin token is needed).
Kinds are case-insensitive; short names: vs, dr, se, we, pa, ra, ap.

Options:
  -n, --namespace <ns>             the resource's namespace (default: default)
${CLIENT_HELP}
`;

/** Runs the command; returns the exit code. */
export async function deleteCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS },
  });
  if (values.help === true) {
    out(deleteHelp);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError('meshlet delete: give <kind> <name>');
  const [kindText, name] = positionals as [string, string];
  const kind = resolveKind(kindText);
  if (kind === undefined) throw new UsageError(`meshlet delete: unknown kind "${kindText}"`);
  const ns = values.namespace ?? 'default';
  await call(clientTarget(values), 'DELETE', `${RESOURCES_PATH}/${kind}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  out(`${kind} ${ns}/${name} deleted`);
  return 0;
}
