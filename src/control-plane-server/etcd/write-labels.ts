/**
 * How a write's issues name what it wrote. Validation of the stored set names each resource by
 * its key (`etcd:/meshlet/config/VirtualService/default/reviews`); the caller of an apply knows
 * its resources by their place in the request, and the file store names them so (`<apply>[i]`),
 * which `meshlet apply` turns into the file and line they came from (`cli/apply-sources.ts`).
 * An apply's refusal and warnings are named the same way here, whichever store serves it, and
 * those of a `--config` directory's sync by the files (as the file store names them).
 *
 * @module
 */
import { type ConfigIssue, makeIssue } from '../../config/issues.ts';

/** The label of the i-th resource of an apply, as the file store writes it. */
export const applyLabel = (i: number): string => `<apply>[${i}]`;

/** The issue file naming a stored key. */
export const keyFile = (key: string): string => `etcd:${key}`;

/** The keys a write touched (in the order of the resources it was given), and what to call them. */
export class WriteLabels {
  readonly #touched: ReadonlySet<string>;
  readonly #labels = new Map<string, string>();

  /**
   * `labelOf`: the name of the i-th touched key to the caller — an apply's `<apply>[i]`, a synced
   * directory's file — or undefined (a key named as stored).
   */
  constructor(touched: readonly string[], labelOf?: (i: number) => string | undefined) {
    this.#touched = new Set(touched.map(keyFile));
    for (const [i, k] of touched.entries()) {
      const label = labelOf?.(i);
      if (label !== undefined) this.#labels.set(keyFile(k), label);
    }
  }

  /** Whether `issue` is about a key the write touched. */
  touches(issue: ConfigIssue): boolean {
    return issue.file !== undefined && this.#touched.has(issue.file);
  }

  /** `issue`, about a touched key, naming it as the caller knows it. */
  relabel(issue: ConfigIssue): ConfigIssue {
    const label = issue.file === undefined ? undefined : this.#labels.get(issue.file);
    return label === undefined ? issue : makeIssue({ ...issue, file: label });
  }

  /** {@link relabel}led, as text. */
  text(issue: ConfigIssue): string {
    return String(this.relabel(issue));
  }
}
