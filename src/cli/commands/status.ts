/**
 * `meshlet status`: what each control-plane replica serves, which workloads are connected and
 * which versions they ACKed or NACKed (like `istioctl proxy-status`), source health and the
 * changes that were refused. Several `--control-plane` URLs are merged into one view.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { type RegisterResponse, type Rejection, STATUS_PATH, type StatusDocument, WORKLOADS_PATH, type WorkloadStatus } from '../../control-plane/protocol.ts';
import { summaryLine } from '../../control-plane-server/status.ts';
import { out, UsageError } from '../args.ts';
import { CLIENT_HELP, CLIENT_OPTIONS, callOne, clientTarget } from '../client.ts';
import { STATUS_SHAPE, WORKLOADS_SHAPE } from '../answer-shapes.ts';
import { jsonPrintable, printable } from '../escape.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, outputFormat, printDocument } from '../output.ts';
import { table } from '../table.ts';
import { registeredRows } from '../workload-health.ts';

export const statusHelp = `Usage: meshlet status [options]

Prints which config version each connected workload ACKed, source health (with stored values
skipped as invalid) and refused changes; the CA's trust bundle, and each workload's SPIFFE ID,
certificate expiry and inbound mTLS/plaintext counts (STRICT: whether PeerAuthentication STRICT
would refuse nothing it has seen); the registered WorkloadEntries with their health (healthy,
unhealthy with the probe's error, or - when not health-checked). Needs an admin or viewer token. Give several control planes
(comma-separated) to merge the replicas' views. Text that came from workloads (NACK reasons,
labels, …) is printed with control characters escaped. Exits 1 when no control plane answered,
2 on a usage mistake.

Options:
${OUTPUT_HELP}
      --json                       deprecated: use -o json (prints the old shape: one status
                                   document, or a list of them for several control planes)
${CLIENT_HELP}
`;

/**
 * A workload is SYNCED when it ACKed the config version being served and the endpoints version it
 * was last sent (endpoints versions are per namespace: each workload sees its own view).
 */
/** The workload's state, with how long ago it ACKed (or NACKed) the config, as `istioctl proxy-status` prints `SYNCED (2m)`. */
export function state(w: WorkloadStatus, configVersion: string, now = Date.now()): string {
  if (w.disconnectedAt !== undefined) return `DISCONNECTED ${w.disconnectedAt}`;
  const since = (at: string) => (Number.isNaN(Date.parse(at)) ? '' : ` (${ago(now - Date.parse(at))})`);
  if (w.nacked !== undefined) return `NACKED ${w.nacked.kind} ${w.nacked.version}${since(w.nacked.at)}`;
  const config = w.acked.config;
  if (config?.version === configVersion && w.sent.endpoints !== undefined && w.acked.endpoints?.version === w.sent.endpoints) return `SYNCED${since(config.at)}`;
  return 'STALE';
}

/** How wide the LABELS cell gets before it is cut (`…`); `-o json` has them all. */
const LABELS_WIDTH = 40;

/**
 * The labels that tell a service's instances apart (`app` is the service): `version=v2`, or `-`.
 * `version` first, prefixed keys (`security.istio.io/tlsMode`) last; a value with `,`, `=`, a
 * quote or white space quoted, so `team=a,b=c` cannot read as two labels; cut at 40 characters.
 */
export function instanceLabels(w: WorkloadStatus): string {
  const rank = (k: string): number => (k === 'version' ? 0 : k.includes('/') ? 2 : 1);
  const labels = Object.entries(w.labels)
    .filter(([k, v]) => !(k === 'app' && v === w.service))
    .sort(([a], [b]) => rank(a) - rank(b));
  if (labels.length === 0) return '-';
  const text = labels.map(([k, v]) => `${k}=${/[,="\s]/.test(v) ? JSON.stringify(v) : v}`).join(',');
  return text.length > LABELS_WIDTH ? `${text.slice(0, LABELS_WIDTH - 1)}…` : text;
}

const pair = (sent: string | undefined, acked: string | undefined) => `${sent ?? '-'}/${acked ?? '-'}`;

/** The certificate's expiry and how long is left (EXPIRED when past). */
function expiry(w: WorkloadStatus): string {
  const id = w.identity;
  if (id === undefined) return 'no certificate';
  const ms = id.notAfter - Date.now();
  const when = isoOf(id.notAfter);
  if (ms <= 0) return `${when} (EXPIRED)`;
  return `${when} (${ms >= 7_200_000 ? `${Math.floor(ms / 3_600_000)}h` : `${Math.floor(ms / 60_000)}m`} left)`;
}

function tlsCounts(w: WorkloadStatus): string {
  const t = w.inboundTls;
  return t === undefined ? '-' : `${t.mtls}/${t.plaintext}`;
}

/** An epoch-ms time as ISO text; one a Date cannot hold (a control plane of another version let it through) is shown as the number, not thrown over the whole table. */
function isoOf(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? `${ms} (not a date)` : d.toISOString();
}

/** A duration in the largest whole unit (`45s`, `12m`, `3h`, `2d`). */
function ago(ms: number): string {
  if (ms < 120_000) return `${Math.max(0, Math.floor(ms / 1000))}s`;
  if (ms < 7_200_000) return `${Math.floor(ms / 60_000)}m`;
  return ms < 172_800_000 ? `${Math.floor(ms / 3_600_000)}h` : `${Math.floor(ms / 86_400_000)}d`;
}

/**
 * Whether PeerAuthentication STRICT would refuse nothing this workload has seen: it has a
 * certificate and no inbound request arrived in plaintext (Istio's "is it safe to turn on STRICT").
 * The counts are since the mesh started, so a plaintext request says when the last one came: one
 * long ago means the clients have moved to mTLS since.
 */
export function strictReady(w: WorkloadStatus, now = Date.now()): string {
  if (w.identity === undefined) return 'no: no certificate';
  const t = w.inboundTls;
  if (t === undefined) return 'unknown: no TLS counts';
  if (t.plaintext > 0) {
    const n = `no: ${t.plaintext} plaintext request${t.plaintext === 1 ? '' : 's'}`;
    return t.lastPlaintextAt === undefined ? n : `${n}, the last ${isoOf(t.lastPlaintextAt)} (${ago(now - t.lastPlaintextAt)} ago)`;
  }
  return t.mtls === 0 ? 'yes (no requests yet)' : 'yes';
}
const p = printable;

/**
 * The refusals of several replicas, each once, newest first, with the servers that refused it:
 * replicas sharing etcd each refuse the same etcd write (same origin and reasons, moments apart).
 * The n-th such refusal of one replica is the n-th of another (a change refused again later is
 * listed again).
 */
export function mergeRejections(docs: readonly Pick<StatusDocument, 'server' | 'rejections'>[]): (Rejection & { servers: string[] })[] {
  const merged = new Map<string, Omit<Rejection, 'at'> & { at: string; servers: string[] }>();
  for (const doc of docs) {
    const seen = new Map<string, number>();
    // Oldest first, so that the n-th occurrence is counted the same way on every replica.
    for (const r of [...doc.rejections].reverse()) {
      const what = JSON.stringify([r.origin, r.reasons]);
      const n = (seen.get(what) ?? 0) + 1;
      seen.set(what, n);
      const key = `${what}#${n}`;
      const known = merged.get(key);
      if (known === undefined) merged.set(key, { ...r, servers: [doc.server] });
      else {
        if (!known.servers.includes(doc.server)) known.servers.push(doc.server);
        if (r.at < known.at) known.at = r.at;
      }
    }
  }
  return [...merged.values()].sort((a, b) => b.at.localeCompare(a.at));
}

/** Runs the command; returns the exit code. */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...OUTPUT_OPTION, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...CLIENT_OPTIONS } });
  if (values.help === true) {
    out(statusHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  if (values.json === true && format !== undefined) throw new UsageError('meshlet status: give -o json or the deprecated --json, not both');
  if (positionals.length > 0) throw new UsageError(`meshlet status: unexpected argument "${positionals[0]}"`);
  const target = clientTarget(values);
  const results = await Promise.allSettled(target.urls.map((u) => callOne(u, target.token, 'GET', STATUS_PATH, undefined, undefined, target.timeoutMs, target.tokenFrom, target.ca, STATUS_SHAPE) as Promise<StatusDocument>));
  // The registrations with their health (the text form only; -o json has the status documents).
  const registrations =
    format === undefined && values.json !== true
      ? await Promise.allSettled(target.urls.map((u, i) => (results[i]!.status === 'fulfilled' ? (callOne(u, target.token, 'GET', WORKLOADS_PATH, undefined, undefined, target.timeoutMs, target.tokenFrom, target.ca, WORKLOADS_SHAPE) as Promise<{ workloads: RegisterResponse[] }>) : Promise.resolve({ workloads: [] }))))
      : [];
  const docs: { url: string; doc: StatusDocument }[] = [];
  const unreachable: { url: string; error: string }[] = [];
  let failure: unknown;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') docs.push({ url: target.urls[i]!, doc: r.value });
    else {
      failure = r.reason;
      unreachable.push({ url: target.urls[i]!, error: (r.reason as Error).message });
      if (target.urls.length > 1) process.stderr.write(`${target.urls[i]}: ${p((r.reason as Error).message)}\n`);
    }
  });
  if (docs.length === 0) throw failure;
  if (format !== undefined) {
    printDocument(format, { servers: docs.map(({ url, doc }) => ({ url, status: doc })), unreachable });
    return 0;
  }
  if (values.json === true) {
    process.stderr.write('meshlet: --json is deprecated; use -o json\n');
    out(jsonPrintable(JSON.stringify(docs.length === 1 ? docs[0]!.doc : docs.map((d) => d.doc), null, 2)));
    return 0;
  }
  out(
    table(
      ['SERVER', 'URL', 'CONFIG', 'ENDPOINTS', 'REGISTERED', 'SOURCE'],
      docs.map(({ url, doc }) => {
        const s = doc.source;
        const health = s.healthy ? 'healthy' : `UNHEALTHY: ${s.error ?? ''}`;
        return [doc.server, url, doc.configVersion, doc.endpointsVersion, String(doc.registered), `${s.kind}:${s.location} (${health})`].map(p);
      }),
    ),
  );
  const cas = docs.filter((d) => d.doc.ca !== undefined);
  if (cas.length > 0) {
    const ca = cas[0]!.doc.ca!;
    const bundles = [...new Set(cas.map((d) => d.doc.ca!.trustBundleVersion))];
    out(`\nCA: trust domain ${p(ca.trustDomain)}, ${ca.roots} root${ca.roots === 1 ? '' : 's'} trusted (bundle ${p(ca.trustBundleVersion)})${ca.rotating ? ', ROTATING (finish with meshlet ca rotate --finalize)' : ''}, signer until ${p(ca.signerNotAfter)}`);
    if (bundles.length > 1) out(`replicas push different trust bundles: ${p(bundles.join(', '))}`);
  }
  const mc = docs.find((d) => d.doc.meshConfig !== undefined)?.doc.meshConfig;
  if (mc !== undefined) out(`\nMeshConfig pushed to meshes: ${p(mc.source ?? '(given)')} (version ${p(mc.version)}): ${mc.settings.length === 0 ? 'sets nothing' : p(mc.settings.join(', '))}`);
  // Each replica pushes its own (its --mesh-config file): a mesh takes the one of the replica it watches, and another after it moves.
  const pushed = docs.map((d) => `${d.url} ${d.doc.meshConfig?.version ?? 'none'}`);
  if (new Set(docs.map((d) => d.doc.meshConfig?.version)).size > 1) out(`replicas push different MeshConfigs (a mesh takes the one of the replica it watches): ${p(pushed.join(', '))}`);
  const versions = [...new Set(docs.map((d) => d.doc.configVersion))];
  const configVersion = docs[0]!.doc.configVersion;
  if (versions.length > 1) out(`\nreplicas serve different config versions: ${p(versions.join(', '))}`);
  // Replicas that share a store skip the same values: print each once.
  const skipped = [...new Map(docs.flatMap((d) => d.doc.source.skipped ?? []).map((v) => [v.key, v])).values()];
  if (skipped.length > 0) {
    out('\nStored values skipped as invalid (not served; repair with meshlet apply or meshlet delete):');
    for (const v of skipped) {
      out(`  ${p(v.key)}${v.resource === undefined ? '' : ` (${p(v.resource)})`}`);
      for (const r of v.reasons) out(`    ${p(r)}`);
    }
  }
  const workloads = docs.flatMap((d) => d.doc.workloads);
  out(`\n${p(docs.length > 1 ? summaryLine(workloads, configVersion) : docs[0]!.doc.summary)}`);
  if (workloads.length > 0) {
    out('');
    out(
      table(
        ['NAMESPACE', 'SERVICE', 'LABELS', 'CONNECTION', 'PEER', 'CONFIG SENT/ACKED', 'ENDPOINTS SENT/ACKED', 'STATE'],
        workloads.map((w) =>
          [w.namespace, w.service, instanceLabels(w), w.connection, w.peer, pair(w.sent.config, w.acked.config?.version), pair(w.sent.endpoints, w.acked.endpoints?.version), state(w, configVersion)].map(p),
        ),
      ),
    );
    const reported = workloads.filter((w) => w.identity !== undefined || w.inboundTls !== undefined);
    if (reported.length > 0) {
      out('');
      out(
        table(
          ['NAMESPACE', 'SERVICE', 'CONNECTION', 'SPIFFE ID', 'CERT EXPIRES', 'INBOUND MTLS/PLAINTEXT', 'STRICT'],
          reported.map((w) => [w.namespace, w.service, w.connection, w.identity?.spiffeId ?? '-', expiry(w), tlsCounts(w), strictReady(w)].map(p)),
        ),
      );
    }
    for (const w of workloads) {
      if (w.nacked === undefined) continue;
      const labels = instanceLabels(w);
      out(`\n${p(`${w.namespace}/${w.service}${labels === '-' ? '' : ` {${labels}}`} (${w.connection}) NACKed ${w.nacked.kind} ${w.nacked.version} at ${w.nacked.at}`)}:`);
      for (const r of w.nacked.reasons) out(`  ${p(r)}`);
    }
  }
  const lists: RegisterResponse[][] = [];
  registrations.forEach((r, i) => {
    if (r.status === 'fulfilled') lists.push(r.value.workloads);
    else process.stderr.write(`${target.urls[i]}: registered workloads: ${p((r.reason as Error).message)}\n`);
  });
  const registered = registeredRows(lists);
  if (registered.length > 0) {
    out('\nRegistered WorkloadEntries:');
    out(table(['NAMESPACE', 'NAME', 'ADDRESS', 'HEALTH'], registered.map((row) => row.map(p))));
  }
  // Replicas serving the same version have the same findings: print each once.
  const findings = [...new Map(docs.flatMap((d) => d.doc.findings ?? []).map((f) => [`${f.level} ${f.code} ${f.text}`, f])).values()];
  if (findings.length > 0) {
    out(`\nAnalysis findings of the config being served (advisory: applied anyway, as in Istio):`);
    for (const f of findings) out(`  ${p(f.level.padEnd(7))} ${p(f.code)} ${p(f.text)}`);
  }
  const rejections = mergeRejections(docs.map((d) => d.doc));
  if (rejections.length > 0) {
    out('\nRefused changes (newest first):');
    for (const r of rejections) {
      out(`  ${p(r.at)}  ${p(r.origin)}${docs.length > 1 ? ` (${r.servers.length === docs.length ? 'every replica' : p(r.servers.join(', '))})` : ''}`);
      for (const reason of r.reasons) out(`    ${p(reason)}`);
    }
  }
  return 0;
}
