/**
 * Runs an example as a user does: `node examples/…/server.ts` in its own process on a free port
 * (PORT=0), read from its "listening on http://127.0.0.1:PORT" line; curl as the client.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

const ROOT = new URL('../../', import.meta.url).pathname;

/** A running example: its port, and how to stop it (SIGTERM, as a user would). */
export interface ExampleProcess {
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts `script` (a path under the repository root) and waits until it says where it listens. */
export async function startExample(script: string): Promise<ExampleProcess> {
  const child: ChildProcess = spawn(process.execPath, [`${ROOT}${script}`], { env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}): ${out}`)));
  });
  return {
    port,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** `curl -s --path-as-is` to 127.0.0.1:`port`: the status and the body. */
export function curl(port: number, path: string, ...args: string[]): { status: number; body: string } {
  const r = spawnSync('curl', ['-s', '--path-as-is', '-o', '-', '-w', '\n%{http_code}', ...args, `http://127.0.0.1:${port}${path}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}
