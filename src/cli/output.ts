/**
 * How every command prints: `-o/--output json|yaml` for machines (one document on stdout, a
 * shape documented in docs/cli.md), a table or lines for people otherwise.
 *
 * @module
 */
import { stringify } from 'yaml';
import { UsageError } from './args.ts';

/** A machine output format. */
export type OutputFormat = 'json' | 'yaml';

/** parseArgs option shared by every command that prints: `-o, --output <json|yaml>`. */
export const OUTPUT_OPTION = { output: { type: 'string', short: 'o' } } as const;

/** Help line for {@link OUTPUT_OPTION}. */
export const OUTPUT_HELP = '  -o, --output <json|yaml>         print one JSON or YAML document (shapes: docs/cli.md)';

/** Reads `--output`: undefined for the human format; anything but json or yaml is a usage error. */
export function outputFormat(value: string | undefined): OutputFormat | undefined {
  if (value === undefined) return undefined;
  if (value === 'json' || value === 'yaml') return value;
  throw new UsageError(`--output: expected json or yaml, got "${value}"`);
}

/** Prints `data` as one JSON (2-space indented) or YAML document. */
export function printDocument(format: OutputFormat, data: unknown): void {
  const text = format === 'json' ? JSON.stringify(data, null, 2) : stringify(data, { lineWidth: 0 }).trimEnd();
  process.stdout.write(`${text}\n`);
}
