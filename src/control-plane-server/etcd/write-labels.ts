/**
 * How a write's issues name what it wrote. Validation of the stored set names each resource by
 * its key (`etcd:/meshlet/config/VirtualService/default/reviews`); the caller of an apply knows
 * its resources by their place in the request, and the file store names them so (`<apply>[i]`),
 * which `meshlet apply` turns into the file and line they came from (`cli/apply-sources.ts`).
 * An apply's refusal and warnings are named the same way here, whichever store serves it.
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
  readonly #labels: ReadonlyMap<string, string>;
  readonly #relabel: boolean;

  /** `labelOf`: the name of the i-th touched key to the caller (none: the keys are named as stored). */
  constructor(touched: readonly string[], labelOf?: (i: number) => string) {
    this.#labels = new Map(touched.map((k, i) => [keyFile(k), (labelOf ?? applyLabel)(i)]));
    this.#relabel = labelOf !== undefined;
  }

  /** Whether `issue` is about a key the write touched. */
  touches(issue: ConfigIssue): boolean {
    return issue.file !== undefined && this.#labels.has(issue.file);
  }

  /** `issue`, about a touched key, naming it as the caller knows it. */
  relabel(issue: ConfigIssue): ConfigIssue {
    const label = this.#relabel && issue.file !== undefined ? this.#labels.get(issue.file) : undefined;
    return label === undefined ? issue : makeIssue({ ...issue, file: label });
  }

  /** {@link relabel}led, as text. */
  text(issue: ConfigIssue): string {
    return String(this.relabel(issue));
  }
}
