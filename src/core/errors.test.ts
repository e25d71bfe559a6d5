import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, ERROR_STATUS, InvalidArgumentError, MeshletError, type MeshletErrorCode } from './errors.ts';

test('instanceof: the base class matches any branded error, a subclass only its own instances', () => {
  const config = new ConfigError([]);
  const arg = new InvalidArgumentError('bad');
  assert.ok(config instanceof MeshletError);
  assert.ok(arg instanceof MeshletError);
  assert.ok(config instanceof ConfigError);
  assert.equal(arg instanceof ConfigError, false, 'an InvalidArgumentError is not a ConfigError');
  assert.equal(config instanceof InvalidArgumentError, false);
  // an error from another copy of meshlet carries the brand but not this copy's prototype
  const foreign = Object.assign(new Error('x'), { [Symbol.for('meshlet.error')]: true });
  assert.ok(foreign instanceof MeshletError);
  assert.equal(foreign instanceof ConfigError, false);
  assert.equal({} instanceof MeshletError, false);
});

/** gRPC status names by number (grpc-js `Status`), for the catalogue's gRPC column. */
const GRPC_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

interface DocRow {
  readonly line: number;
  readonly http: number | undefined;
  readonly grpc: number | undefined;
  readonly flag: string | undefined;
  readonly when: string;
  readonly todo: string;
}

/** Parses the catalogue table of docs/errors.md: code → its row. Fails on a row it cannot read. */
function parseCatalogue(text: string): Map<string, DocRow> {
  const lines = text.split('\n');
  const header = lines.findIndex((l) => l.startsWith('| code |'));
  assert.ok(header >= 0, 'docs/errors.md has no table starting "| code |"');
  assert.deepEqual(cells(lines[header] as string), ['code', 'HTTP', 'gRPC', 'Envoy flag', 'when it happens', 'what to do'], 'catalogue columns');
  const rows = new Map<string, DocRow>();
  for (let i = header + 2; i < lines.length && (lines[i] as string).startsWith('|'); i++) {
    const line = i + 1;
    const c = cells(lines[i] as string);
    assert.equal(c.length, 6, `docs/errors.md:${line}: expected 6 cells, got ${c.length}`);
    const [codeCell, httpCell, grpcCell, flagCell, when, todo] = c as [string, string, string, string, string, string];
    const code = /^`(MESHLET_ERR_[A-Z_]+)`$/.exec(codeCell)?.[1];
    assert.ok(code !== undefined, `docs/errors.md:${line}: code cell ${codeCell}`);
    assert.ok(!rows.has(code), `docs/errors.md:${line}: ${code} is documented twice`);
    const http = /^(\d{3}|—)(\s|$)/.exec(httpCell)?.[1];
    assert.ok(http !== undefined, `docs/errors.md:${line}: HTTP cell ${httpCell} (a status or —)`);
    const grpc = /^(?:(\d+) ([A-Z_]+)|—)(\s|$)/.exec(grpcCell);
    assert.ok(grpc !== null, `docs/errors.md:${line}: gRPC cell ${grpcCell} (a number and its name, or —)`);
    if (grpc[1] !== undefined) assert.equal(grpc[2], GRPC_NAMES[Number(grpc[1])], `docs/errors.md:${line}: gRPC ${grpc[1]} is ${GRPC_NAMES[Number(grpc[1])]}`);
    const flag = /^(?:`([A-Z]+)`|—)$/.exec(flagCell);
    assert.ok(flag !== null, `docs/errors.md:${line}: flag cell ${flagCell} (a flag in backticks, or —)`);
    assert.ok(when.length > 20 && todo.length > 0, `docs/errors.md:${line}: ${code} needs "when it happens" and "what to do"`);
    rows.set(code, {
      line,
      http: http === '—' ? undefined : Number(http),
      grpc: grpc[1] === undefined ? undefined : Number(grpc[1]),
      flag: flag[1],
      when,
      todo,
    });
  }
  return rows;
}

function cells(row: string): string[] {
  return row
    .replace(/^\|\s*/, '')
    .replace(/\s*\|\s*$/, '')
    .split(/\s+\|\s+/);
}

test('docs/errors.md documents every code of ERROR_STATUS with its statuses and flag, and no other code', () => {
  const text = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
  const rows = parseCatalogue(text);
  const codes = Object.keys(ERROR_STATUS) as MeshletErrorCode[];
  for (const code of codes) {
    const row = rows.get(code);
    assert.ok(row !== undefined, `${code} is not in docs/errors.md`);
    const st = ERROR_STATUS[code];
    assert.deepEqual({ http: row.http, grpc: row.grpc, flag: row.flag }, { http: st.http, grpc: st.grpc, flag: st.flag }, `docs/errors.md:${row.line}: ${code}`);
  }
  for (const code of rows.keys()) assert.ok(Object.hasOwn(ERROR_STATUS, code), `docs/errors.md documents ${code}, which src/core/errors.ts does not have`);
  // Prose too: every code the page names anywhere is a real one.
  for (const m of text.matchAll(/MESHLET_ERR_[A-Z_]+/g)) assert.ok(Object.hasOwn(ERROR_STATUS, m[0]), `docs/errors.md mentions ${m[0]}, which does not exist`);
});
