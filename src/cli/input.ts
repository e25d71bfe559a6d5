/**
 * Reading config named on the command line: files and directories as `loadConfig` reads
 * them, and `-` for standard input (`cat vs.yaml | meshlet validate -`, `meshlet apply -f -`),
 * whose issues name the source `<stdin>` with line numbers.
 *
 * @module
 */
import { IssueList } from '../config/issues.ts';
import { checkDocuments, type LoadConfigOptions, type LoadedConfig } from '../config/load-config.ts';
import { parseText, type RawDocument, readSources } from '../config/load.ts';
import { decodeConfigText } from '../config/read-files.ts';
import { UsageError } from './args.ts';
import { printable } from './escape.ts';

/** The name issues give standard input. */
export const STDIN_LABEL = '<stdin>';

/** Largest standard input read, like the 16 MiB limit on one file. */
const MAX_STDIN_BYTES = 16 * 1024 * 1024;

/** Reads standard input to its end as UTF-8; past `maxBytes` it reports an error and returns undefined. */
async function readStdin(issues: IssueList, maxBytes: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = chunk as Buffer;
    size += b.length;
    if (size > maxBytes) {
      issues.file(STDIN_LABEL, undefined, 'error', `is larger than the ${(maxBytes / 1048576).toFixed(1)} MiB limit`);
      process.stdin.destroy();
      return undefined;
    }
    chunks.push(b);
  }
  return decodeConfigText(Buffer.concat(chunks));
}

/**
 * Reads and parses `sources` in order: `-` is standard input (at most once), anything else
 * a file or directory. Problems go to `issues`; a `-` given twice is a usage error.
 */
export async function readInputs(sources: readonly string[], issues: IssueList, maxStdinBytes = MAX_STDIN_BYTES): Promise<RawDocument[]> {
  if (sources.filter((s) => s === '-').length > 1) throw new UsageError('"-" (standard input) can be given only once');
  const docs: RawDocument[] = [];
  let paths: string[] = [];
  const flush = async () => {
    if (paths.length > 0) docs.push(...(await readSources(paths, issues)));
    paths = [];
  };
  for (const s of sources) {
    if (s !== '-') {
      paths.push(s);
      continue;
    }
    await flush();
    const text = await readStdin(issues, maxStdinBytes);
    if (text !== undefined) docs.push(...parseText(text, STDIN_LABEL, issues));
  }
  await flush();
  return docs;
}

/** {@link readInputs}, then validation and analysis as `loadConfig` does them. */
export async function loadInputs(sources: readonly string[], options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const issues = new IssueList();
  const docs = await readInputs(sources, issues);
  return checkDocuments(docs, options, issues);
}

/** Prints the config's errors for a command that needs valid config (routes, explain); returns its exit code, 1. */
export function refuseInvalidConfig(errors: readonly unknown[]): number {
  for (const i of errors) process.stderr.write(`error   ${printable(String(i))}\n`);
  process.stderr.write('config has errors; run `meshlet validate` for the full report\n');
  return 1;
}

/**
 * What `routes` and `explain` print on stderr before their answer, for a config they accept:
 * every warning of validation — a field or kind meshlet does not apply (`MESHLET0002`, a skipped
 * Gateway or EnvoyFilter), a deprecation — and every analysis finding, in the order `meshlet
 * validate` prints them. A config carried over from Istio must not lose a rule silently (a TCP
 * route, a gateway-only VirtualService) just because the answer was asked of `routes`. Infos of
 * validation (skipped Deployments, ServiceAccounts) are left to `validate`.
 */
export function reportAdvisories(loaded: Pick<LoadedConfig, 'issues' | 'findings'>, write: (line: string) => void = (l) => process.stderr.write(l)): void {
  const findings = new Set(loaded.findings);
  for (const i of loaded.issues.all) {
    const finding = findings.has(i);
    if (!finding && i.level !== 'warning') continue;
    write(`${i.level.padEnd(7)} ${finding ? `${i.code} ` : ''}${printable(String(i))}\n`);
  }
}
