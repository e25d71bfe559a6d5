/**
 * `meshlet get <kind> [name] [-n ns] [-o yaml|json]`: reads the config a control plane serves;
 * `meshlet get <kind>,<kind>… | all`: several kinds, or every one (a backup with `-o yaml`).
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { resolveKind, SHORT_KIND_NAMES } from '../../control-plane-server/kinds.ts';
import { KIND_VERSIONS, type Kind } from '../../config/resource.ts';
import { RESOURCES_PATH, type WireResource } from '../../control-plane/protocol.ts';
import { out, UsageError } from '../args.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, call, clientTarget } from '../client.ts';
import { RESOURCE_LIST_SHAPE, RESOURCE_SHAPE } from '../answer-shapes.ts';
import { printable } from '../escape.ts';
import { OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { table } from '../table.ts';

export const getHelp = `Usage: meshlet get <kind> [name] [options]
       meshlet get <kind>,<kind>... | all [options]

Lists the resources of a kind the control plane serves (from its files, etcd or 'apply'),
or prints one. Kinds are case-insensitive; short names: vs, dr, se, we, pa, ra, ap.
Several kinds are comma-separated (vs,dr); 'all' is every kind the control plane serves
(its config: not the WorkloadEntries of registered instances). For a backup:
'meshlet get all -A -o yaml > backup.yaml', restored with 'meshlet apply -f backup.yaml'.
Needs an admin or viewer token (meshlet token --viewer). Exits 1 when a named resource does not exist or the control plane
refuses, 2 on a usage mistake.

Options:
  -n, --namespace <ns>             only this namespace (a list defaults to every namespace;
                                   one resource defaults to 'default')
  -A, --all-namespaces             every namespace (kubectl's flag; what a list shows without -n)
  -o, --output <json|yaml>         print the resource, or a List of them, instead of a table
${CLIENT_HELP}
`;

function detail(r: WireResource): string {
  const spec = (r.spec ?? {}) as Record<string, unknown>;
  if (Array.isArray(spec.hosts)) return `hosts: ${(spec.hosts as string[]).join(',')}`;
  if (typeof spec.host === 'string') return `host: ${spec.host}`;
  if (typeof spec.address === 'string') return `address: ${spec.address}`;
  const sel = (spec.selector as { matchLabels?: Record<string, string> } | undefined)?.matchLabels;
  if (sel !== undefined) return `selector: ${Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(',')}`;
  return '';
}

/** The usage error for a kind the control plane does not serve, naming those it does (a Gateway or a Deployment is never stored: apply skips them). */
export function unknownKind(command: string, text: string): string {
  const short = new Map<string, string>(Object.entries(SHORT_KIND_NAMES).map(([s, k]) => [k, s]));
  const kinds = Object.keys(KIND_VERSIONS).map((k) => {
    const s = short.get(k);
    return s === undefined || s === k.toLowerCase() ? k : `${k} (${s})`;
  });
  return `meshlet ${command}: unknown kind "${text}"; the control plane serves ${kinds.join(', ')}`;
}

/**
 * The kinds `text` names: one kind, several comma-separated (`vs,dr`, as kubectl), or `all`:
 * every kind the control plane serves, in the order it lists them.
 */
export function kindsOf(text: string): Kind[] {
  const kinds = new Set<Kind>();
  for (const part of text.split(',')) {
    const t = part.trim();
    if (t.toLowerCase() === 'all') {
      for (const k of Object.keys(KIND_VERSIONS) as Kind[]) kinds.add(k);
      continue;
    }
    const kind = resolveKind(t);
    if (kind === undefined) throw new UsageError(t === '' ? `meshlet get: an empty kind in "${text}" (give kinds as vs,dr)` : unknownKind('get', t));
    kinds.add(kind);
  }
  return [...kinds];
}

/** Runs the command; returns the exit code. */
export async function getCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, 'all-namespaces': { type: 'boolean', short: 'A' }, ...OUTPUT_OPTION, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS },
  });
  if (values.help === true) {
    out(getHelp);
    return 0;
  }
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('meshlet get: give <kind> [name]');
  const [kindText, name] = positionals as [string, string | undefined];
  if (values['all-namespaces'] === true && (values.namespace !== undefined || name !== undefined)) throw new UsageError('meshlet get: -A lists every namespace; it takes neither -n nor a resource name');
  const kinds = kindsOf(kindText);
  const one = kinds.length === 1 && kindText.toLowerCase() !== 'all';
  if (name !== undefined && !one) throw new UsageError(`meshlet get: a resource name goes with one kind, not "${kindText}"`);
  const format = outputFormat(values.output);
  const target = clientTarget(values);
  let resources: WireResource[];
  if (name !== undefined) {
    const ns = values.namespace ?? 'default';
    resources = [(await call(target, 'GET', `${RESOURCES_PATH}/${kinds[0]}/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, undefined, undefined, RESOURCE_SHAPE)) as WireResource];
  } else {
    // Several kinds: one listing of every kind (one version of the config), then these kinds.
    const q = new URLSearchParams(one ? { kind: kinds[0] as string } : {});
    if (values.namespace !== undefined) q.set('namespace', values.namespace);
    const wanted = new Set<string>(kinds);
    resources = ((await call(target, 'GET', `${RESOURCES_PATH}${q.size === 0 ? '' : `?${q}`}`, undefined, undefined, RESOURCE_LIST_SHAPE)) as { resources: WireResource[] }).resources.filter((r) => wanted.has(r.kind));
  }
  if (format !== undefined) {
    // Like kubectl: one resource as itself, a listing as a List (both can be applied again).
    printDocument(format, name !== undefined ? resources[0] : { apiVersion: 'v1', kind: 'List', items: resources });
  } else if (resources.length === 0) {
    process.stderr.write(`No ${one ? `${kinds[0]} ` : ''}resources found${values.namespace === undefined ? '' : ` in namespace ${values.namespace}`}.\n`);
  } else {
    out(table(['NAMESPACE', 'NAME', 'KIND', 'DETAIL'], resources.map((r) => [r.metadata.namespace ?? 'default', r.metadata.name, r.kind, detail(r)].map((c) => printable(String(c))))));
  }
  return 0;
}
