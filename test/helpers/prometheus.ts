/**
 * Starts a real Prometheus (Debian's `prometheus`) for tests: its config and TSDB in a temporary
 * directory, on a free loopback port (verified: a port taken between the check and the start is
 * retried with another), scraping the given targets every `scrapeIntervalMs`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOOLS } from './tools.ts';
import { deadPort } from './upstreams.ts';

export interface PrometheusServer {
  readonly url: string;
  /** An instant query (`/api/v1/query`): the vector's samples, labels and value. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** `host:port` targets of one job. */
  readonly targets: readonly string[];
  readonly metricsPath?: string;
  /** @defaultValue 1000 */
  readonly scrapeIntervalMs?: number;
  /** @defaultValue 20000 */
  readonly startTimeoutMs?: number;
}

export async function startPrometheus(o: PrometheusOptions): Promise<PrometheusServer> {
  const bin = TOOLS.prometheus.find();
  if (bin === undefined) throw new Error(`prometheus is not installed. Install ${TOOLS.prometheus.install}.`);
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-prometheus-'));
  const interval = `${Math.max(1, Math.round((o.scrapeIntervalMs ?? 1000) / 1000))}s`;
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    '  - job_name: meshlet',
    `    metrics_path: ${o.metricsPath ?? '/stats/prometheus'}`,
    '    static_configs:',
    `      - targets: [${o.targets.map((t) => `'${t}'`).join(', ')}]`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await deadPort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(bin, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (c: Buffer) => {
      log = (log + c.toString()).slice(-4000);
    });
    if (await ready(url, child, o.startTimeoutMs ?? 20_000)) {
      return {
        url,
        query: async (promql) => {
          const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
          const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
          if (body.status !== 'success') throw new Error(`query failed: ${body.error ?? res.status}\n${promql}`);
          return (body.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
        },
        stop: async () => {
          await stopChild(child);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
    lastLog = log;
    await stopChild(child);
    // The port may have been taken between the check and the start: another one.
    if (!/address already in use/.test(log)) break;
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error(`prometheus did not become ready:\n${lastLog}`);
}

async function ready(url: string, child: ChildProcess, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) return false;
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(500) });
      if (res.status === 200) return true;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
