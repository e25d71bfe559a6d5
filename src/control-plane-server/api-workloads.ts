/**
 * `/v1/workloads`: WorkloadGroup auto-registration with leases.
 * `POST` registers (the service and namespace come from the token; the WorkloadEntry is made from
 * the template of the WorkloadGroup the body names, or of the group named like the service, see
 * workload-group.ts), `PUT <ns>/<name>/lease`
 * renews (404 once the record is gone, so the client registers again), `DELETE <ns>/<name>`
 * deregisters, `GET` lists.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkDocuments } from '../config/load-config.ts';
import { fromObjects } from '../config/load.ts';
import { DEFAULT_LEASE_MS, MAX_LEASE_MS, MIN_LEASE_MS, type RegisterResponse, type WireResource } from '../control-plane/protocol.ts';
import { ControlPlaneError } from './errors.ts';
import { type Caller, readJson, remoteAddress, type RequestContext, requireSameWorkload, sendJson } from './http.ts';
import type { WorkloadRecord } from './store.ts';
import { entryFromGroup, findGroup } from './workload-group.ts';

/** The record name of an instance: `<service>-<address with . and : as ->-<first port>`. */
export function workloadName(service: string, address: string, firstPort: number): string {
  return `${service}-${address.toLowerCase().replace(/[.:]/g, '-')}-${firstPort}`;
}

function str(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new ControlPlaneError('INVALID', `${field} must be a non-empty string`);
  return v;
}

function stringMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ControlPlaneError('INVALID', `${field} must be an object of strings`);
  for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw new ControlPlaneError('INVALID', `${field}.${k} must be a string`);
  return v as Record<string, string>;
}

function portMap(v: unknown): Record<string, number> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ControlPlaneError('INVALID', 'ports must be an object of port name to port number, e.g. {"http": 8080}');
  return v as Record<string, number>;
}

/** The first port of a port map (names the record), 0 when there is none. */
function firstPort(ports: Readonly<Record<string, number>>): number {
  return Number(Object.values(ports)[0] ?? 0);
}

function response(rec: WorkloadRecord): RegisterResponse {
  return { name: rec.entry.metadata.name, namespace: rec.entry.metadata.namespace ?? 'default', leaseMs: rec.leaseMs, workload: rec.entry };
}

async function register(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller): Promise<void> {
  const body = await readJson(req, ctx.maxBodyBytes);
  let service: string;
  let namespace: string;
  if (caller?.role === 'workload') {
    service = caller.service;
    namespace = caller.namespace;
    requireSameWorkload(caller, str(body.service, 'service'), str(body.namespace, 'namespace') ?? namespace, 'register');
  } else {
    const s = str(body.service, 'service');
    if (s === undefined) throw new ControlPlaneError('INVALID', 'service is required when the request has no workload token');
    service = s;
    namespace = str(body.namespace, 'namespace') ?? 'default';
  }
  const labels = stringMap(body.labels, 'labels');
  if (labels.app !== undefined && labels.app !== service) {
    throw new ControlPlaneError('FORBIDDEN', `labels.app is "${labels.app}" but the workload is service "${service}"`);
  }
  const ownPorts = portMap(body.ports);
  const named = str(body.group, 'group');
  const groupName = named ?? service;
  const group = findGroup(ctx.store.current().resources, namespace, groupName);
  if (group === undefined && named !== undefined) {
    throw new ControlPlaneError('NOT_FOUND', `WorkloadGroup ${namespace}/${named} does not exist; create it, or register without "group"`);
  }
  const address = str(body.address, 'address') ?? remoteAddress(req);
  let leaseMs = DEFAULT_LEASE_MS;
  if (body.leaseMs !== undefined) {
    if (typeof body.leaseMs !== 'number' || !Number.isFinite(body.leaseMs)) throw new ControlPlaneError('INVALID', 'leaseMs must be a number');
    leaseMs = Math.min(MAX_LEASE_MS, Math.max(MIN_LEASE_MS, Math.round(body.leaseMs)));
  }
  const own = {
    address,
    ports: ownPorts,
    labels,
    locality: str(body.locality, 'locality'),
    network: str(body.network, 'network'),
    weight: body.weight === undefined || body.weight === null ? undefined : (body.weight as number),
  };
  let spec: Record<string, unknown>;
  let metadata: WireResource['metadata'];
  if (group === undefined) {
    spec = { address, ports: ownPorts, labels: { ...labels, app: service } };
    for (const f of ['locality', 'network', 'weight'] as const) if (own[f] !== undefined) spec[f] = own[f];
    metadata = { name: workloadName(service, address, firstPort(ownPorts)), namespace, labels: { app: service } };
  } else {
    const made = entryFromGroup(group, own);
    if (made.labels.app !== undefined && made.labels.app !== service) {
      throw new ControlPlaneError('FORBIDDEN', `${group.ref} gives its workloads label app=${made.labels.app}, but the workload is service "${service}"`);
    }
    made.labels.app = service;
    spec = { ...made.spec, labels: made.labels };
    metadata = { name: workloadName(groupName, address, firstPort(made.spec.ports ?? {})), namespace, labels: made.labels, annotations: made.annotations };
  }
  if (Object.keys(spec.ports as object).length === 0) {
    throw new ControlPlaneError('INVALID', group === undefined ? 'ports must name at least one port, e.g. {"http": 8080}' : `ports must name at least one port: neither the registration nor ${group.ref}'s template names any`);
  }
  const entry: WireResource = { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata, spec };
  const checked = checkDocuments(fromObjects([entry], 'registration'), { analysis: 'off' });
  if (!checked.ok) {
    throw new ControlPlaneError('INVALID', 'registration is not a valid WorkloadEntry', { issues: checked.issues.ofLevel('error').map(String) });
  }
  const rec = await ctx.registry.register(entry, service, leaseMs);
  sendJson(res, 200, response(rec));
}

function recordOwner(ctx: RequestContext, namespace: string, name: string): WorkloadRecord | undefined {
  return ctx.registry.list().find((r) => r.entry.metadata.name === name && (r.entry.metadata.namespace ?? 'default') === namespace);
}

/** Routes `/v1/workloads[/...]`; `rest` is the path after the prefix, split on `/`. */
export async function workloadsApi(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller, rest: string[]): Promise<void> {
  const method = req.method ?? 'GET';
  if (rest.length === 0 && method === 'POST') return register(req, res, ctx, caller);
  if (rest.length === 0 && method === 'GET') {
    const list = ctx.registry.list().filter((r) => caller?.role !== 'workload' || r.entry.metadata.namespace === caller.namespace);
    return sendJson(res, 200, { version: ctx.registry.version(), workloads: list.map(response) });
  }
  const [namespace, name, lease] = rest as [string, string, string | undefined];
  if (rest.length === 3 && lease === 'lease' && method === 'PUT') {
    const owner = recordOwner(ctx, namespace, name);
    requireSameWorkload(caller, owner?.service, namespace, 'renew');
    const rec = await ctx.registry.renew(namespace, name);
    if (rec === undefined) throw new ControlPlaneError('NOT_FOUND', `workload ${namespace}/${name} is not registered (its lease ended?); register again`);
    return sendJson(res, 200, response(rec));
  }
  if (rest.length === 2 && method === 'DELETE') {
    const owner = recordOwner(ctx, namespace, name);
    requireSameWorkload(caller, owner?.service, namespace, 'deregister');
    if (!(await ctx.registry.deregister(namespace, name))) throw new ControlPlaneError('NOT_FOUND', `workload ${namespace}/${name} is not registered`);
    return sendJson(res, 200, { deleted: true, name, namespace });
  }
  throw new ControlPlaneError('NOT_FOUND', `no such endpoint: ${method} ${req.url}`);
}
