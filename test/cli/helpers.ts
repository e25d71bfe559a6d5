/**
 * Helpers for the CLI tests: run the real `meshlet` (src/cli/main.ts) as a child process, with
 * standard input, or with its stdout pipe closed by the reader.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';

export const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;
export const BOOKINFO = new URL('../../examples/bookinfo', import.meta.url).pathname;
export const DEMO_MESH = new URL('../../examples/demo/mesh', import.meta.url).pathname;

/** What a finished CLI run gave. */
export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `meshlet ...args` to its end; `input` is written to its standard input. */
export function meshlet(args: readonly string[], options: { input?: string | Buffer; env?: Record<string, string> } = {}): Run {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', input: options.input ?? '', env: { ...process.env, ...options.env }, maxBuffer: 64 * 1024 * 1024 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Like {@link meshlet} but without blocking this process (servers in it keep answering). */
export async function meshletAsync(args: readonly string[], options: { env?: Record<string, string> } = {}): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/**
 * Runs `meshlet ...args` with stdout a real pipe whose reader goes away: at once (before the CLI
 * wrote anything), or — `readFirstLine` — after the first line arrived, as `| head -1` does.
 * Resolves the exit code and signal, what was read, and stderr.
 */
export async function closedPipe(args: readonly string[], options: { readFirstLine?: boolean; env?: Record<string, string> } = {}): Promise<{ code: number | null; signal: string | null; read: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  let read = '';
  if (options.readFirstLine === true) {
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        if (read.includes('\n')) return;
        read += d;
        if (read.includes('\n')) {
          read = read.slice(0, read.indexOf('\n') + 1);
          child.stdout.destroy();
          resolve();
        }
      });
      child.stdout.on('end', () => resolve());
    });
  } else {
    child.stdout.destroy();
  }
  const [code, signal] = await exited;
  if (!child.stderr.closed) await once(child.stderr, 'close');
  return { code, signal, read, stderr };
}
