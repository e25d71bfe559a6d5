/**
 * The control plane names the resources of an apply by their place in the request
 * (`<apply>[1]: VirtualService default/reviews-canary: spec.hosts[0]: …`): it never saw the
 * files. `apply` knows where each one came from, so its lines name the file (or `<stdin>`) and
 * the line of the field, as every other command does.
 *
 * @module
 */
import type { FieldPath, SourceRef } from '../config/issues.ts';

const SEGMENT = /(?:^|\.)([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;

/** `spec.http[0].headers["x-b3"]` back into its segments (what `formatPath` wrote), or undefined when it is not a path. */
export function parseFieldPath(text: string): FieldPath | undefined {
  const out: (string | number)[] = [];
  SEGMENT.lastIndex = 0;
  while (SEGMENT.lastIndex < text.length) {
    const at = SEGMENT.lastIndex;
    const m = SEGMENT.exec(text);
    if (m === null || m.index !== at) return undefined;
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(JSON.parse(m[3] as string) as string);
  }
  return out.length === 0 ? undefined : out;
}

const APPLY_REF = /<apply>\[(\d+)\]: /;
/** After the place: `Kind ns/name: `, then maybe a field path and `: `. */
const RESOURCE_AND_PATH = /^([A-Za-z]+ [^\s:]+): (?:([^\s:]+): )?/;

/**
 * `text` (a warning or refusal of the control plane) with `<apply>[i]` replaced by the file of
 * the i-th resource sent, and ` (line n)` added for the field it names (else the resource's
 * first line). Text without the marker, or with an index outside `sources`, is returned as is.
 */
export function locateApplyText(text: string, sources: readonly SourceRef[]): string {
  const m = APPLY_REF.exec(text);
  if (m === null) return text;
  const source = sources[Number(m[1])];
  if (source === undefined) return text;
  const rest = text.slice(m.index + m[0].length);
  const r = RESOURCE_AND_PATH.exec(rest);
  const path = r?.[2] === undefined ? [] : parseFieldPath(r[2]);
  const line = (path === undefined ? undefined : source.locate?.(path)) ?? source.line;
  const where = line === undefined || / \(line \d+\)$/.test(text) ? '' : ` (line ${line})`;
  return `${text.slice(0, m.index)}${source.file}: ${rest}${where}`;
}
