/**
 * Config issues: every problem validation or analysis finds, with the file, the resource
 * and the field path, printed as `reviews.yaml: VirtualService default/reviews: spec.http[1].route[0].weight: must be >= 0`.
 *
 * @module
 */

/**
 * How serious an issue is: errors reject the config, warnings and infos do not.
 * @category Config
 */
export type IssueLevel = 'error' | 'warning' | 'info';

/**
 * One segment of a field path: an object key or an array index.
 * @category Config
 */
export type PathSegment = string | number;

/**
 * A field path from the resource root, e.g. `['spec', 'http', 1, 'route', 0, 'weight']`.
 * @category Config
 */
export type FieldPath = readonly PathSegment[];

/**
 * Where a resource came from.
 * @category Config
 */
export interface SourceRef {
  /** File name as given (relative paths stay relative), or a label such as `<inline>`. */
  readonly file: string;
  /** 1-based line of the resource's first line, when known. */
  readonly line?: number;
  /** Finds the 1-based line of a field path inside the resource, when the source keeps positions. */
  readonly locate?: (path: FieldPath) => number | undefined;
}

/**
 * A problem found in configuration.
 * @category Config
 */
export interface ConfigIssue {
  readonly level: IssueLevel;
  /** A code: Istio analyzer codes (`IST0101`) for analysis findings, `MESHLET…` for meshlet's own. */
  readonly code: string;
  /** The file, when the issue belongs to one. */
  readonly file?: string;
  /** The 1-based line, when known. */
  readonly line?: number;
  /** `Kind namespace/name`, when the issue belongs to a resource. */
  readonly resource?: string;
  /** The field path, formatted (`spec.http[1].route[0].weight`); empty for the whole resource. */
  readonly path: string;
  readonly message: string;
  /** Prints the issue in the one format meshlet uses everywhere. */
  toString(): string;
}

const IDENT = /^[A-Za-z_$][\w$-]*$/;

/**
 * Formats a field path: `spec.http[1].headers["x-b3"]` style (keys with dots or slashes are quoted).
 * @category Config
 */
export function formatPath(path: FieldPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (IDENT.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Builds a {@link ConfigIssue}. */
export function makeIssue(fields: Omit<ConfigIssue, 'toString'>): ConfigIssue {
  const issue: ConfigIssue = {
    ...fields,
    toString() {
      const parts: string[] = [];
      if (issue.file !== undefined) parts.push(issue.file);
      if (issue.resource !== undefined) parts.push(issue.resource);
      if (issue.path !== '') parts.push(issue.path);
      const where = parts.length > 0 ? `${parts.join(': ')}: ` : '';
      const line = issue.line !== undefined ? ` (line ${issue.line})` : '';
      return `${where}${issue.message}${line}`;
    },
  };
  return Object.freeze(issue);
}

/**
 * Something that knows a resource's identity and source, used to attach issues to it.
 * @category Config
 */
export interface IssueSubject {
  readonly source: SourceRef;
  /** `Kind namespace/name`. */
  readonly ref: string;
}

/**
 * Collects issues; never throws, so every problem is reported at once.
 * @category Config
 */
export class IssueList {
  readonly #issues: ConfigIssue[] = [];

  /** All issues so far, in the order found. */
  get all(): readonly ConfigIssue[] {
    return this.#issues;
  }

  /** Whether any error (not warning or info) was reported. */
  get hasErrors(): boolean {
    return this.#issues.some((i) => i.level === 'error');
  }

  /** Issues of one level. */
  ofLevel(level: IssueLevel): ConfigIssue[] {
    return this.#issues.filter((i) => i.level === level);
  }

  /** Adds a ready-made issue. */
  push(issue: ConfigIssue): void {
    this.#issues.push(issue);
  }

  /** Adds an issue about a field of a resource. */
  at(subject: IssueSubject | undefined, path: FieldPath, level: IssueLevel, message: string, code = 'MESHLET0001'): void {
    const line = subject?.source.locate?.(path) ?? subject?.source.line;
    this.#issues.push(
      makeIssue({
        level,
        code,
        file: subject?.source.file,
        line,
        resource: subject?.ref,
        path: formatPath(path),
        message,
      }),
    );
  }

  /** Adds an issue about a file as a whole (parse errors, unknown kinds, …). */
  file(file: string, line: number | undefined, level: IssueLevel, message: string, code = 'MESHLET0001'): void {
    this.#issues.push(makeIssue({ level, code, file, line, path: '', message }));
  }
}

/**
 * One parsed document (one resource, before validation).
 * @category Config
 */
export interface RawDocument {
  /** The parsed value. */
  readonly value: unknown;
  /** Where it came from; `locate` maps field paths inside `value` to lines. */
  readonly source: SourceRef;
}
