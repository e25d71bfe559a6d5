/**
 * Small helpers shared by CLI commands: usage errors and label parsing.
 *
 * @module
 */

/** A mistake in how the command was called: printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses `a=b,c=d` (repeatable) into a label map (null prototype: the keys come from the command line). */
export function parseLabels(values: readonly string[] | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const v of values ?? []) {
    for (const pair of v.split(',')) {
      if (pair.trim() === '') continue;
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError(`--labels: expected key=value, got "${pair}"`);
      out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
    }
  }
  return out;
}

/** Writes a line to stdout. */
export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}
