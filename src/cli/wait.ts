/**
 * `--wait` of `meshlet apply` and `meshlet delete`: after the change, wait until every workload
 * connected to the control plane has ACKed the config version it produced — what `istioctl x wait
 * --for distribution` does for a resource, so a rollout script does not shift traffic before
 * the meshes run the new rules. A workload that NACKs the version ends the wait at once.
 *
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { STATUS_PATH, type StatusDocument, type WorkloadStatus } from '../control-plane/protocol.ts';
import { MeshletError } from '../core/errors.ts';
import { UsageError } from './args.ts';
import { type ClientTarget, callOne, durationOption, isUnreachable } from './client.ts';
import { STATUS_SHAPE } from './answer-shapes.ts';
import { printable } from './escape.ts';

/** parseArgs options of the commands that take `--wait`. */
export const WAIT_OPTIONS = {
  wait: { type: 'boolean' },
  'wait-timeout': { type: 'string' },
} as const;

/** How long `--wait` waits by default (istioctl x wait's `--timeout`). */
export const DEFAULT_WAIT_MS = 30_000;

/** How often the replicas' status is read while waiting. */
export const WAIT_POLL_MS = 500;

/** Help lines for {@link WAIT_OPTIONS}. */
export const WAIT_HELP = `      --wait                       then wait until every connected workload ACKed the config
                                   version the change made (exit 1 if one NACKs it, or on timeout;
                                   the change stays made). Needs a token that may read the status
      --wait-timeout <duration>    how long --wait waits, e.g. 2m (default 30s)`;

/** `--wait`'s time limit in ms, or undefined without `--wait`. */
export function waitOption(values: { wait?: boolean; 'wait-timeout'?: string }): number | undefined {
  const text = values['wait-timeout'];
  if (values.wait !== true) {
    if (text !== undefined) throw new UsageError('--wait-timeout: only with --wait');
    return undefined;
  }
  return durationOption('--wait-timeout', text) ?? DEFAULT_WAIT_MS;
}

/** One replica's answer to `GET /status` in one round. */
export interface ReplicaView {
  readonly url: string;
  readonly status: StatusDocument;
}

/** A connected workload, as the wait names it. */
export interface WaitingWorkload {
  /** `namespace/service (connection <id>)`. */
  readonly workload: string;
  /** The config version it ACKed last ('' for none yet). */
  readonly at: string;
}

/** Where the distribution of one config version stands. */
export interface Distribution {
  readonly version: string;
  /** Connected workloads (over every replica that answered). */
  readonly total: number;
  /** Of those, the ones that ACKed the version (or a newer one their replica serves). */
  readonly synced: number;
  readonly pending: readonly WaitingWorkload[];
  /** Workloads that NACKed the version, with their reasons. */
  readonly refused: readonly { readonly workload: string; readonly reasons: readonly string[] }[];
  /** Replicas that do not serve the version yet (`url serves <version>`). */
  readonly behind: readonly string[];
  /** A newer version some replica serves instead (another change came after this one). */
  readonly newer: readonly string[];
  /** Every replica that answered serves it (or a newer one), and every connected workload — at least one — ACKed it. */
  readonly done: boolean;
}

function name(w: WorkloadStatus): string {
  return `${w.namespace}/${w.service} (connection ${w.connection})`;
}

/**
 * Judges rounds of the replicas' status for one config version. Versions are content hashes, not
 * counters, so "newer" is known only by having seen the replica serve the version first: a replica
 * that served it and now serves another has moved past it (a later change), and its workloads at
 * that one are done; a replica never seen at the version is behind (over etcd, its watch has not
 * brought the change yet), whatever its workloads ACKed.
 */
export class DistributionJudge {
  readonly #version: string;
  /** Replicas seen serving the version. */
  readonly #reached = new Set<string>();

  constructor(version: string) {
    this.#version = version;
  }

  judge(views: readonly ReplicaView[]): Distribution {
    const version = this.#version;
    let total = 0;
    let synced = 0;
    const pending: WaitingWorkload[] = [];
    const refused: { workload: string; reasons: readonly string[] }[] = [];
    const behind: string[] = [];
    const newer = new Set<string>();
    for (const { url, status } of views) {
      const current = status.configVersion;
      if (current === version) this.#reached.add(url);
      const reached = this.#reached.has(url);
      if (!reached) behind.push(`${url} serves ${current}`);
      else if (current !== version) newer.add(current);
      const accepts = (v: string | undefined) => v === version || (reached && v === current);
      for (const w of status.workloads) {
        if (w.disconnectedAt !== undefined) continue;
        total++;
        if (w.nacked?.kind === 'config' && accepts(w.nacked.version)) refused.push({ workload: w.nacked.version === version ? name(w) : `${name(w)} (the newer version ${w.nacked.version})`, reasons: w.nacked.reasons });
        else if (reached && accepts(w.acked.config?.version)) synced++;
        else pending.push({ workload: name(w), at: w.acked.config?.version ?? '' });
      }
    }
    // No workload connected is not done: a rollout waiting on the wrong replicas must not pass.
    const done = total > 0 && behind.length === 0 && pending.length === 0 && refused.length === 0;
    return { version, total, synced, pending, refused, behind, newer: [...newer], done };
  }
}

/** What {@link waitForDistribution} needs from the world (tests give their own). */
export interface WaitIo {
  /** Monotonic milliseconds. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** One replica's status; rejects as {@link callOne} does. */
  status(url: string, timeoutMs: number): Promise<StatusDocument>;
}

const realIo = (target: ClientTarget): WaitIo => ({
  now: () => performance.now(),
  sleep: (ms) => sleep(ms),
  status: (url, timeoutMs) => callOne(url, target.token, 'GET', STATUS_PATH, undefined, undefined, timeoutMs, target.tokenFrom, target.ca, STATUS_SHAPE) as Promise<StatusDocument>,
});

/** The outcome of a wait: the last round's distribution, and the replicas that did not answer it. */
export interface WaitResult {
  readonly distribution: Distribution;
  readonly unreachable: readonly string[];
  /** Why each replica in `unreachable` did not answer (the last round's error), by URL. */
  readonly unreachableWhy?: Readonly<Record<string, string>>;
  /** How many replicas answered the last round. */
  readonly answered: number;
  readonly timedOut: boolean;
}

/**
 * Reads every replica's status until the version is distributed, a workload NACKs it, or
 * `timeoutMs` passes. A replica that does not answer is left out of the round (its workloads
 * reconnect to the others); a refusal (a token that may not read the status) is thrown.
 */
export async function waitForDistribution(target: ClientTarget, version: string, timeoutMs: number, io: WaitIo = realIo(target)): Promise<WaitResult> {
  const judge = new DistributionJudge(version);
  const deadline = io.now() + timeoutMs;
  for (;;) {
    const left = Math.max(1, deadline - io.now());
    const answers = await Promise.all(
      target.urls.map(async (url) => {
        try {
          return { url, status: await io.status(url, Math.min(target.timeoutMs, left)) };
        } catch (err) {
          if (isUnreachable(err)) return { url, status: undefined, why: (err as Error).message };
          throw err;
        }
      }),
    );
    const views = answers.filter((a): a is ReplicaView => a.status !== undefined);
    const unreachable = answers.filter((a) => a.status === undefined).map((a) => a.url);
    const unreachableWhy = Object.fromEntries(answers.flatMap((a) => ('why' in a && a.why !== undefined ? [[a.url, a.why]] : [])));
    const distribution = judge.judge(views);
    if (distribution.done || distribution.refused.length > 0) return { distribution, unreachable, unreachableWhy, answered: views.length, timedOut: false };
    const rest = deadline - io.now();
    if (rest <= 0) return { distribution, unreachable, unreachableWhy, answered: views.length, timedOut: true };
    await io.sleep(Math.min(WAIT_POLL_MS, rest));
  }
}

/** The line `--wait` prints when the version is distributed. */
export function distributedLine(d: Distribution): string {
  const newer = d.newer.length === 0 ? '' : ` (or the newer ${d.newer.join(', ')})`;
  return `config version ${d.version}: ${d.synced}/${d.total} connected workloads ACKed it${newer}`;
}

/**
 * How a wait ended: the line to print on success, or the error naming what stands in the way —
 * the workloads that refused the version with their reasons, or those not there when time ran
 * out. Replicas that did not answer are warned about on stderr.
 */
export function waitOutcome(r: WaitResult, timeoutMs: number): { readonly line: string } | { readonly error: MeshletError } {
  for (const u of r.unreachable) {
    const why = r.unreachableWhy?.[u];
    process.stderr.write(`Warning: ${printable(u)} did not answer${why === undefined ? '' : ` (${printable(why)})`}; its workloads were not waited for\n`);
  }
  const d = r.distribution;
  if (d.refused.length > 0) {
    // What workloads sent (their reasons, names and labels) is escaped: it may hold control characters.
    const lines = d.refused.map((x) => printable(`${x.workload}: ${x.reasons.length === 0 ? '(no reason given)' : x.reasons.join('; ')}`));
    return { error: new MeshletError('MESHLET_ERR_CONTROL_PLANE', `config version ${d.version} was refused (NACK) by ${d.refused.length} workload(s), which keep their previous config (the change stays applied):\n  ${lines.join('\n  ')}`) };
  }
  if (r.timedOut) {
    const why: string[] = [];
    if (r.answered === 0) why.push(`no control plane answered (${r.unreachable.join(', ')})`);
    else if (d.total === 0) why.push('no workload is connected to the control plane(s) that answered (give every replica with --control-plane)');
    for (const b of d.behind) why.push(`replica ${b}, not yet ${d.version}`);
    for (const p of d.pending.slice(0, 20)) why.push(`${p.workload} is at ${p.at === '' ? 'no config version yet' : `config version ${p.at}`}`);
    if (d.pending.length > 20) why.push(`and ${d.pending.length - 20} more workload(s)`);
    return { error: new MeshletError('MESHLET_ERR_CONTROL_PLANE', `timed out after ${timeoutMs / 1000} s (--wait-timeout) waiting for config version ${d.version} (the change stays applied): ${d.synced}/${d.total} connected workloads ACKed it; not yet:\n  ${why.map(printable).join('\n  ')}`) };
  }
  return { line: distributedLine(d) };
}

/**
 * `--wait` after a change that produced `version`: waits, prints the outcome (the line in text
 * form; `print` gets the `distributed` field of the machine form) and throws when the wait failed.
 */
export async function waitAfterChange(target: ClientTarget, version: string, timeoutMs: number | undefined, print: (distributed: { workloads: number; acked: number } | undefined, line: string | undefined) => void): Promise<void> {
  if (timeoutMs === undefined) {
    print(undefined, undefined);
    return;
  }
  const r = await waitForDistribution(target, version, timeoutMs);
  const outcome = waitOutcome(r, timeoutMs);
  print({ workloads: r.distribution.total, acked: r.distribution.synced }, 'line' in outcome ? outcome.line : undefined);
  if ('error' in outcome) throw outcome.error;
}
