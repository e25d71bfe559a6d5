/**
 * How every command prints: `-o/--output json|yaml` for machines (one document on stdout, a
 * shape documented in docs/cli.md), a table or lines for people otherwise.
 *
 * @module
 */
import { Document, visit } from 'yaml';
import { UsageError } from './args.ts';
import { hasUnsafe, jsonPrintable } from './escape.ts';

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

/**
 * `data` as one JSON (2-space indented) or YAML document, with control and invisible formatting
 * characters in strings escaped (escape.ts): the same data, safe to print on a terminal.
 */
export function formatDocument(format: OutputFormat, data: unknown): string {
  if (format === 'json') return jsonPrintable(JSON.stringify(data, null, 2));
  const doc = new Document(data);
  // Double quotes make YAML escape C0 (\e, \n); what it leaves raw is escaped below, inside them.
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && hasUnsafe(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  return jsonPrintable(doc.toString({ lineWidth: 0 }).trimEnd());
}

/** Prints `data` as one JSON (2-space indented) or YAML document ({@link formatDocument}). */
export function printDocument(format: OutputFormat, data: unknown): void {
  process.stdout.write(`${formatDocument(format, data)}\n`);
}
