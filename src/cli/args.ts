/**
 * Small helpers shared by CLI commands: usage errors and label parsing.
 *
 * @module
 */

import { checkDnsLabel, checkLabelKey, checkLabelValue } from '../config/validate/common.ts';

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
      const key = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      // The workload's labels as Kubernetes takes them (a pod's metadata.labels): `a=b=c` or `bad key=v` match nothing a config selects.
      const problem = checkLabelKey(key) ?? checkLabelValue(value);
      if (problem !== undefined) throw new UsageError(`--labels: ${problem}`);
      out[key] = value;
    }
  }
  return out;
}

/**
 * `-n, --namespace`: a DNS-1123 label, as `metadata.namespace` must be (and as kubectl requires
 * of `-n`). Without the check, `-n Prod` gave unnamespaced resources a namespace that the same
 * value in the file is refused for. Returns the value; a bad one is a usage error.
 */
export function checkNamespaceOption<T extends string | undefined>(value: T): T {
  if (value === undefined) return value;
  const problem = checkDnsLabel(value);
  if (problem !== undefined) throw new UsageError(`--namespace: ${problem}`);
  return value;
}

/** Writes a line to stdout. */
export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}
