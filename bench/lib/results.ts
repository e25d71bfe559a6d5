/**
 * Writes a benchmark's section into bench/RESULTS.md, replacing the previous run of the same
 * benchmark, with the command that produced it and the machine it ran on.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

const FILE = new URL('../RESULTS.md', import.meta.url);

/** Median of a list of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Replaces the section `id` of RESULTS.md with `body`. */
export function writeSection(id: string, title: string, command: string, body: string): void {
  const header = '# meshlet benchmark results\n\nEach section is written by the script named in it; re-run the command to refresh it.\n';
  const text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : header;
  const start = `<!-- ${id}:start -->`;
  const end = `<!-- ${id}:end -->`;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const section = `${start}\n## ${title}\n\nCommand: \`${command}\`  \nRun: ${new Date().toISOString()} on ${cpus().length}× ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n\n${body.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  const next = i !== -1 && j !== -1 ? text.slice(0, i) + section + text.slice(j + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(FILE, next);
}
