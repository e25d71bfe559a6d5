/**
 * Reads one test table of an Istio Go test file: the `cases := []struct{…}{…}` literal inside a
 * test function, with the function's simple local variables (`x := …`) in scope, and returns its
 * rows as JSON with their line numbers.
 *
 * Used only to (re)generate the conformance case files.
 */
import { functionBody, type GoExpr, GoParser, lineAt } from './go-literal.ts';
import { type Env, GoToJson } from './go-json.ts';

/** One row of a Go test table. */
export interface GoRow {
  /** 1-based line of the row's opening brace in the Go file. */
  readonly line: number;
  /** The row's fields, by their Go names (`name`, `in`, `valid`, …), converted to JSON. */
  readonly fields: Record<string, unknown>;
}

/** Package-level names the tables use. */
const PACKAGE_ENV: Record<string, unknown> = {
  kb: 1024,
  'gvk.KubernetesGateway.Group': 'gateway.networking.k8s.io',
  'gvk.KubernetesGateway.Kind': 'Gateway',
  'gvk.Service.Group': '',
  'gvk.Service.Kind': 'Service',
  'gvk.ServiceEntry.Group': 'networking.istio.io',
  'gvk.ServiceEntry.Kind': 'ServiceEntry',
  'constants.DefaultAuthenticationPolicyName': 'default',
  allowedTargetRefs: '[gateway.networking.k8s.io/Gateway, /Service, networking.istio.io/ServiceEntry]',
  mb: 1024 * 1024,
  someName: 'foo',
  someNamespace: 'bar',
};

/** Reads the table of `func <test>` in `file`; `tableVar` picks one when the function has several. */
export function readTable(file: string, test: string, tableVar?: string, fields?: readonly string[]): { rows: GoRow[]; unresolved: string[]; line: number } {
  const { body, offset, line } = functionBody(file, test);
  const env: Env = new Map(Object.entries(PACKAGE_ENV).map(([k, v]) => [k, { value: v }]));
  // Local variables assigned at the top level of the function, before the table.
  const assign = /^\t(\w+)\s*:=\s*/gm;
  let table: { start: number; name: string } | undefined;
  for (let m = assign.exec(body); m !== null; m = assign.exec(body)) {
    const name = m[1] as string;
    const rest = body.slice(m.index + m[0].length);
    if (tableVar === undefined ? rest.startsWith('[]struct') : tableVar === name && (rest.startsWith('[]') || rest.startsWith('map['))) {
      table = { start: m.index + m[0].length, name };
      break;
    }
    try {
      const p = new GoParser(rest);
      const e = p.parseExpr();
      env.set(name, e);
    } catch {
      // not a simple expression (e.g. a function call with a block): not in scope
    }
  }
  if (table === undefined) throw new Error(`${test}: no table found`);
  const p = new GoParser(body.slice(table.start));
  const type = p.parseType();
  const lit = p.parseComposite(type) as Extract<GoExpr, { k: 'composite' }>;
  const conv = new GoToJson(env);
  if (type.t === 'map') {
    // A map table (`map[int]bool{0: false, …}`): each entry is a row of the two `fields`.
    const [k, val] = fields ?? ['key', 'value'];
    return {
      rows: lit.elems.map((el) => ({
        line: lineAt(file, offset + table.start + el.pos),
        fields: { [k as string]: conv.value(el.key as GoExpr), [val as string]: conv.value(el.value) },
      })),
      unresolved: [...conv.unresolved],
      line,
    };
  }
  const rows: GoRow[] = lit.elems.map((el) => {
    const v = el.value as Extract<GoExpr, { k: 'composite' }>;
    if (type.t !== 'slice') throw new Error(`${test}: the table is not a slice`);
    const elem = fields !== undefined ? { t: 'struct' as const, fields } : type.elem;
    const row = conv.value({ k: 'composite', type: elem, elems: v.elems, pos: v.pos }) as Record<string, unknown>;
    return { line: lineAt(file, offset + table.start + v.pos), fields: row };
  });
  return { rows, unresolved: [...conv.unresolved], line };
}
