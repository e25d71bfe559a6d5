/**
 * Prints rows as a kubectl-style table: upper-case headers, columns padded to their widest cell.
 *
 * @module
 */

/** Formats `rows` under `headers` (every row as long as `headers`). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  // A loop, not Math.max(...cells): spreading some 100k rows overflows the call stack.
  const widths = headers.map((h) => h.length);
  for (const r of rows) {
    for (let i = 0; i < widths.length; i++) {
      const n = (r[i] ?? '').length;
      if (n > (widths[i] as number)) widths[i] = n;
    }
  }
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
