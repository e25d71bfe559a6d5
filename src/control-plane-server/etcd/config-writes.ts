/**
 * What one write of the etcd config store changes, planned on a consistent read of the config and
 * of the file owners (committed by `EtcdConfigStore` in one guarded txn):
 *
 * - an apply through the API puts resources, and refuses (409) to replace a resource the files
 *   of a `--config` directory define, naming the file, as the file store does;
 * - a delete through the API refuses the same way;
 * - a file sync (a replica with `--config`) puts what the directory defines and marks it as the
 *   files' (`<prefix>/owners/<Kind>/<namespace>/<name>`: `{ dir, file, host }`), and deletes what
 *   that directory (the same path, whichever replica) defined before and no longer does.
 *
 * @module
 */
import type { ApplyResponse, WireResource } from '../../control-plane/protocol.ts';
import { canonicalJson } from '../canonical-json.ts';
import { ControlPlaneError } from '../errors.ts';
import type { TxnOp } from './client.ts';
import { parse } from './config-check.ts';
import { keptStatus } from '../../config/workloads.ts';

/** The files that define a resource stored in etcd. */
export interface FileOwner {
  /** The `--config` directory (absolute). */
  readonly dir: string;
  /** The file, relative to `dir`. */
  readonly file: string;
  /** The host of the replica that applied it. */
  readonly host: string;
}

/** What a write changes: the ops, the config keys it read and writes (guarded), what it did. */
export interface WritePlan {
  readonly ops: TxnOp[];
  readonly touched: string[];
  readonly applied: ApplyResponse['applied'][number][];
}

/** Where a write happens: the config root, the owners root, the namespace of resources without one. */
export interface WriteContext {
  readonly root: string;
  readonly owners: string;
  readonly defaultNamespace: string;
  readonly now: string;
}

/** The owner records read, by the config key of their resource. */
export function readOwners(kvs: readonly { key: string; value: string }[], ctx: Pick<WriteContext, 'root' | 'owners'>): Map<string, FileOwner> {
  const owners = new Map<string, FileOwner>();
  for (const kv of kvs) {
    const v = parse(kv.value) as Partial<FileOwner> | undefined;
    if (typeof v?.dir !== 'string' || typeof v.file !== 'string') continue;
    owners.set(ctx.root + kv.key.slice(ctx.owners.length), { dir: v.dir, file: v.file, host: typeof v.host === 'string' ? v.host : '?' });
  }
  return owners;
}

const ownerKey = (key: string, ctx: WriteContext): string => ctx.owners + key.slice(ctx.root.length);

/** `<dir>/<file>`, and who applied it. */
export function ownerText(o: FileOwner): string {
  return `${o.dir.replace(/\/+$/, '')}/${o.file} (the --config of the control plane on ${o.host})`;
}

/** A resource defined by files: answered 409 to the API, naming the file. */
function definedByFiles(ref: string, owner: FileOwner, verb: 'change' | 'delete'): ControlPlaneError {
  return new ControlPlaneError('CONFLICT', `${ref} is defined in ${ownerText(owner)}; ${verb} it there, not through the API`);
}

/** What a file sync reports besides the plan: deleted resources, and resources the files took from the API or from another directory. */
export interface FileSyncNotes {
  readonly deleted: string[];
  readonly tookOver: string[];
}

/**
 * Puts `resources` into `set`. Without `files`, an API apply: a resource the files define is
 * refused unless applied exactly as it is. With `files`, a sync of that directory: every resource
 * is marked as its file's.
 */
export function planPuts(
  set: Map<string, string>,
  owners: ReadonlyMap<string, FileOwner>,
  resources: readonly WireResource[],
  ctx: WriteContext,
  files?: { readonly dir: string; readonly host: string; readonly fileOf: readonly string[]; readonly notes: FileSyncNotes },
): WritePlan {
  const plan: WritePlan = { ops: [], touched: [], applied: [] };
  for (const [i, r] of resources.entries()) {
    const namespace = r.metadata?.namespace ?? ctx.defaultNamespace;
    const key = `${ctx.root}${r.kind}/${namespace}/${r.metadata?.name ?? ''}`;
    const ref = `${r.kind} ${namespace}/${r.metadata?.name}`;
    const before = set.get(key);
    const prior = before === undefined ? undefined : (parse(before) as WireResource | undefined);
    const creationTimestamp = r.metadata?.creationTimestamp ?? prior?.metadata?.creationTimestamp ?? ctx.now;
    const status = keptStatus(r.kind, r.status);
    const wire: WireResource = { apiVersion: r.apiVersion, kind: r.kind, metadata: { ...r.metadata, namespace, creationTimestamp }, spec: r.spec, ...(status === undefined ? {} : { status }) };
    const same = before !== undefined && sameContent(prior, wire);
    // An owner record whose resource is gone (deleted with etcdctl) defines nothing.
    const owner = before === undefined ? undefined : owners.get(key);
    plan.touched.push(key);
    if (files === undefined) {
      if (owner !== undefined && !same) throw definedByFiles(ref, owner, 'change');
      if (owner === undefined && owners.has(key)) plan.ops.push({ delete: { key: ownerKey(key, ctx) } });
    } else {
      const file = files.fileOf[i]!;
      if (owner?.dir !== files.dir || owner.file !== file) {
        plan.ops.push({ put: { key: ownerKey(key, ctx), value: JSON.stringify({ dir: files.dir, file, host: files.host }) } });
        if (owner !== undefined && owner.dir !== files.dir) files.notes.tookOver.push(`${ref} (was defined in ${ownerText(owner)})`);
        else if (owner === undefined && before !== undefined && !same) files.notes.tookOver.push(`${ref} (was applied through the API)`);
      }
    }
    if (same) {
      plan.applied.push({ ref, action: 'unchanged' });
      continue;
    }
    const value = JSON.stringify(wire);
    plan.applied.push({ ref, action: before === undefined ? 'created' : 'configured' });
    set.set(key, value);
    plan.ops.push({ put: { key, value } });
  }
  return plan;
}

/** Deletes one resource through the API: refused (409) when files define it. */
export function planDelete(set: Map<string, string>, owners: ReadonlyMap<string, FileOwner>, kind: string, namespace: string, name: string, ctx: WriteContext): WritePlan {
  const key = `${ctx.root}${kind}/${namespace}/${name}`;
  const ref = `${kind} ${namespace}/${name}`;
  const owner = owners.get(key);
  if (!set.has(key)) return { ops: [], touched: [], applied: [] };
  if (owner !== undefined) throw definedByFiles(ref, owner, 'delete');
  set.delete(key);
  return { ops: [{ delete: { key } }], touched: [key], applied: [{ ref, action: 'configured' }] };
}

/**
 * Makes etcd hold what the files of `dir` define: puts them (marked as the files'), and deletes
 * the resources marked as `dir`'s that the files no longer define.
 */
export function planFileSync(
  set: Map<string, string>,
  owners: ReadonlyMap<string, FileOwner>,
  resources: readonly { readonly wire: WireResource; readonly file: string }[],
  ctx: WriteContext,
  source: { readonly dir: string; readonly host: string },
  notes: FileSyncNotes,
): WritePlan {
  const plan = planPuts(
    set,
    owners,
    resources.map((r) => r.wire),
    ctx,
    { ...source, fileOf: resources.map((r) => r.file), notes },
  );
  const defined = new Set(plan.touched);
  for (const [key, owner] of owners) {
    if (owner.dir !== source.dir || defined.has(key)) continue;
    plan.ops.push({ delete: { key: ownerKey(key, ctx) } });
    if (!set.delete(key)) continue;
    plan.ops.push({ delete: { key } });
    plan.touched.push(key);
    const [kind, namespace, name] = key.slice(ctx.root.length).split('/');
    notes.deleted.push(`${kind} ${namespace}/${name}`);
  }
  return plan;
}

/** Same resource content, ignoring the creation timestamp. */
export function sameContent(a: WireResource | undefined, b: WireResource): boolean {
  if (a === undefined) return false;
  const strip = (r: WireResource): unknown => [r.apiVersion, r.kind, { ...r.metadata, creationTimestamp: undefined }, r.spec, keptStatus(r.kind, r.status) ?? null];
  return canonicalJson(strip(a)) === canonicalJson(strip(b));
}
