/** Small output helpers for the demo: aligned tables, percentages, medians. */

/** Column alignment: `l`eft or `r`ight. */
export type Align = 'l' | 'r';

/** Prints rows as aligned columns (two spaces apart), each line indented by `indent`. */
export function table(rows: readonly (readonly (string | number)[])[], align: readonly Align[], indent = '   '): string {
  const cells = rows.map((r) => r.map(String));
  const widths: number[] = [];
  for (const r of cells) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return cells
    .map((r) => indent + r.map((c, i) => ((align[i] ?? 'l') === 'r' ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd())
    .join('\n');
}

/** `part` of `whole` as a percentage with one decimal, e.g. `90.5%`. */
export function pct(part: number, whole: number): string {
  return whole === 0 ? '-' : `${((100 * part) / whole).toFixed(1)}%`;
}

/** The median of `values` (0 when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Milliseconds, rounded, e.g. `102 ms`; sub-millisecond values keep one decimal. */
export function ms(v: number): string {
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

/** A scene heading. */
export function heading(n: number, title: string, rule: string): string {
  return `\n${n}. ${title}\n   rule: ${rule}`;
}
