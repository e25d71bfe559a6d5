/**
 * `meshlet apply -f <file, dir or ->`: sends resources to the control plane, which validates
 * the whole resulting config and refuses it with every issue, or stores it and pushes it.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { IssueList } from '../../config/issues.ts';
import { classifyKind } from '../../config/validate/api-kinds.ts';
import { validateDocuments } from '../../config/validate/index.ts';
import { SkippedKinds } from '../../config/validate/skipped-kinds.ts';
import { type ApplyResponse, RESOURCES_PATH } from '../../control-plane/protocol.ts';
import { isMeshletError, MeshletError } from '../../core/errors.ts';
import { locateApplyText } from '../apply-sources.ts';
import { checkNamespaceOption, out, UsageError } from '../args.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, call, clientTarget } from '../client.ts';
import { APPLY_SHAPE } from '../answer-shapes.ts';
import { printable } from '../escape.ts';
import { readInputs } from '../input.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { WAIT_HELP, WAIT_OPTIONS, waitAfterChange, waitOption } from '../wait.ts';

export const applyHelp = `Usage: meshlet apply -f <file, dir or ->... [options]

Creates or replaces resources on the control plane (an admin token is needed). '-f -' reads
standard input. Each resource is checked here first (errors name the file or <stdin> and the
line, and nothing is sent); the control plane then validates and analyses the whole resulting
config: if anything is wrong nothing changes and every issue is printed (exit 1). Warnings
(e.g. a VirtualService whose host another one already claims) are printed as 'Warning: …'
on stderr. Resources defined in the control plane's own --config files cannot be changed this
way. With --wait, it then waits until every workload connected to the control plane(s) runs
the new config version (give every replica's URL: each lists its own connections). Exits 2 on
a usage mistake.

Options:
  -f, --filename <file, dir or ->  YAML or JSON files, directories of them, or - (repeatable)
  -n, --namespace <ns>             namespace for resources without one
${WAIT_HELP}
${OUTPUT_HELP}
${CLIENT_HELP}
`;

/** `Kind ns/name` split into its parts (the machine output names resources both ways). */
export function refParts(ref: string): { kind: string; namespace: string; name: string } {
  const space = ref.indexOf(' ');
  const slash = ref.indexOf('/', space);
  return { kind: ref.slice(0, space), namespace: ref.slice(space + 1, slash), name: ref.slice(slash + 1) };
}

/** Runs the command; returns the exit code. */
export async function applyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { filename: { type: 'string', short: 'f', multiple: true }, namespace: { type: 'string', short: 'n' }, ...OUTPUT_OPTION, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS, ...WAIT_OPTIONS },
  });
  if (values.help === true) {
    out(applyHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  const waitMs = waitOption(values);
  checkNamespaceOption(values.namespace);
  const files = [...(values.filename ?? []), ...positionals];
  if (files.length === 0) throw new UsageError('meshlet apply: give -f <file, dir or ->');
  const target = clientTarget(values);
  const issues = new IssueList();
  const docs = await readInputs(files, issues);
  // Each resource on its own (the analysis of the whole config is the control plane's): errors
  // found here name the file and line, which the control plane cannot.
  if (!issues.hasErrors) validateDocuments(docs, { defaultNamespace: values.namespace }, issues);
  if (issues.hasErrors) {
    const errors = issues.ofLevel('error');
    for (const i of errors) process.stderr.write(`error: ${printable(String(i))}\n`);
    process.stderr.write(`meshlet: configuration rejected before sending, ${errors.length} error(s); nothing was sent\n`);
    return 1;
  }
  if (docs.length === 0) throw new UsageError(`meshlet apply: no resources in ${files.map((f) => (f === '-' ? '<stdin>' : f)).join(', ')}`);
  // Kinds meshlet does not apply (a manifest's Deployments, Gateways, …) are said here, naming the
  // file and line, and not sent (the control plane could only name the request).
  const skipped = new SkippedKinds();
  const sent = docs.filter((d) => {
    const v = d.value as { apiVersion?: unknown; kind?: unknown } | null;
    if (v === null || typeof v !== 'object' || typeof v.apiVersion !== 'string' || typeof v.kind !== 'string') return true;
    const decision = classifyKind(v.apiVersion, v.kind);
    if (decision.action !== 'skip') return true;
    skipped.add(v as Record<string, unknown>, v.apiVersion, v.kind, decision, d.source, values.namespace ?? 'default');
    return false;
  });
  const notices = new IssueList();
  skipped.report(notices);
  for (const i of notices.all) process.stderr.write(`Warning: ${printable(String(i))}\n`);
  if (sent.length === 0) throw new UsageError(`meshlet apply: nothing to apply: every resource in ${files.map((f) => (f === '-' ? '<stdin>' : f)).join(', ')} is of a kind meshlet does not apply`);
  const items = sent.map((d) => {
    const v = d.value as { metadata?: { namespace?: string } };
    if (values.namespace !== undefined && typeof v.metadata === 'object' && v.metadata !== null && v.metadata.namespace === undefined) {
      return { ...v, metadata: { ...v.metadata, namespace: values.namespace } };
    }
    return v;
  });
  const body = JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
  // The control plane names what was sent `<apply>[i]`; the lines name the file and line instead.
  const sources = sent.map((d) => d.source);
  let answer: ApplyResponse;
  try {
    answer = (await call(target, 'POST', RESOURCES_PATH, body, undefined, APPLY_SHAPE)) as ApplyResponse;
  } catch (err) {
    if (!isMeshletError(err)) throw err;
    const located = err.message
      .split('\n')
      .map((l) => locateApplyText(l, sources.map((s) => ({ ...s, file: printable(s.file) }))))
      .join('\n');
    throw located === err.message ? err : new MeshletError(err.code, located, { cause: err });
  }
  const warnings = answer.warnings.map((w) => locateApplyText(w, sources));
  for (const w of warnings) process.stderr.write(`Warning: ${printable(w)}\n`);
  const applied = answer.applied.map((a) => ({ ref: a.ref, ...refParts(a.ref), action: a.action }));
  if (format === undefined) for (const a of answer.applied) out(printable(`${a.ref} ${a.action}`));
  // What was applied is printed first (and in the machine form whatever the wait gives): a wait that fails (exit 1) does not undo it.
  await waitAfterChange(target, answer.version, waitMs, (distributed, line) => {
    if (format !== undefined) printDocument(format, { version: answer.version, applied, warnings, ...(distributed === undefined ? {} : { distributed }) });
    else if (line !== undefined) out(line);
  });
  return 0;
}
