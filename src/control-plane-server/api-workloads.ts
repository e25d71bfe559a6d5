/**
 * `/v1/workloads`: WorkloadGroup auto-registration with leases.
 * `POST` registers (the service and namespace come from the token; the WorkloadEntry is made from
 * the template of the WorkloadGroup the body names, or of the group named like the service, see
 * workload-group.ts), `PUT <ns>/<name>/lease`
 * renews (404 once the record is gone, so the client registers again), `PUT <ns>/<name>/health`
 * sets the `Healthy` condition of a health-checked entry (its workload's probe changed state; 409
 * for an entry without `proxy.istio.io/health-checks-enabled`), `DELETE <ns>/<name>`
 * deregisters, `GET` lists.
 *
 * A record belongs to the service that registered it: only that service replaces, renews or
 * deregisters it (an admin token may renew and deregister any). Its name carries a hash of who
 * registered what, so two registrations of different services or addresses never share a name.
 * The address must pass the server's {@link AddressPolicy}; each service owns at most
 * `maxRegistrationsPerWorkload` records.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkDocuments } from '../config/load-config.ts';
import { HEALTH_CHECKS_ANNOTATION } from '../config/workloads.ts';
import { fromObjects } from '../config/load.ts';
import { DEFAULT_LEASE_MS, MAX_LEASE_MS, MIN_LEASE_MS, type RegisterResponse, type WireResource, WORKLOADS_PATH } from '../control-plane/protocol.ts';
import { ControlPlaneError } from './errors.ts';
import { type Caller, readJson, remoteAddress, type RequestContext, requireSameWorkload, sendJson, type WriterCaller } from './http.ts';
import { requireWriter } from './viewer-gate.ts';
import type { WorkloadRecord } from './store.ts';
import { entryFromGroup, findGroup, healthCondition } from './workload-group.ts';

/** Longest health message kept (a probe's error; the rest is cut). */
const MAX_MESSAGE = 1024;

/** Largest health report body (`{"healthy":false,"message":"…"}`; a longer one is 413). */
const MAX_HEALTH_BODY = 8 * 1024;

/** Longest Kubernetes object name (a DNS-1123 subdomain). */
const MAX_NAME = 253;

/**
 * The record name of an instance: `<group>-<address, each . and : as ->-<first port>-<hash>`, where
 * the hash (10 hex digits of a SHA-256) covers the owner's namespace and service, the group, the
 * address and the port. The readable part alone is ambiguous (`api` + `gateway-…` reads like
 * `api-gateway` + `…`, and IPv6 addresses split anywhere); the hash makes names of different
 * registrations differ, and the store refuses to let anyone but the owner replace a record.
 * Like Istio's auto-registered names, a name longer than 253 characters keeps its end.
 */
export function workloadName(owner: { readonly namespace: string; readonly service: string }, group: string, address: string, firstPort: number): string {
  const hash = createHash('sha256').update(JSON.stringify([owner.namespace, owner.service, group, address, firstPort])).digest('hex').slice(0, 10);
  const name = `${group}-${address.toLowerCase().replace(/[^a-z0-9]/g, '-')}-${firstPort}-${hash}`;
  return name.length <= MAX_NAME ? name : name.slice(name.length - MAX_NAME).replace(/^[^a-z0-9]+/, '');
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

async function register(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: WriterCaller): Promise<void> {
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
  // The identity the workload's certificate proves: the token's service account, never another.
  const askedSa = str(body.serviceAccount, 'serviceAccount');
  let serviceAccount: string | undefined = askedSa;
  if (caller?.role === 'workload') {
    serviceAccount = caller.serviceAccount;
    if (askedSa !== undefined && askedSa !== serviceAccount) throw new ControlPlaneError('FORBIDDEN', `register: serviceAccount "${askedSa}" is not the token's service account "${serviceAccount}"`);
  }
  const labels = stringMap(body.labels, 'labels');
  if (labels.app !== undefined && labels.app !== service) {
    throw new ControlPlaneError('FORBIDDEN', `labels.app is "${labels.app}" but the workload is service "${service}"`);
  }
  const ownPorts = portMap(body.ports);
  if (body.healthChecks !== undefined && body.healthChecks !== null && typeof body.healthChecks !== 'boolean') {
    throw new ControlPlaneError('INVALID', `healthChecks must be true or false, got ${JSON.stringify(body.healthChecks)}`);
  }
  const runsProbe = body.healthChecks === true;
  const named = str(body.group, 'group');
  const groupName = named ?? service;
  const group = findGroup(ctx.store.current().resources, namespace, groupName);
  if (group === undefined && named !== undefined) {
    throw new ControlPlaneError('NOT_FOUND', `WorkloadGroup ${namespace}/${named} does not exist; create it, or register without "group"`);
  }
  const given = str(body.address, 'address');
  const address = given ?? remoteAddress(req);
  const claim = ctx.addressPolicy.check(address, remoteAddress(req));
  if (!claim.ok) {
    const where = given === undefined ? `the address the request came from, ${address}, cannot be registered (give the workload's address)` : `address ${address} cannot be registered`;
    throw new ControlPlaneError('FORBIDDEN', `register: ${where}: ${claim.reason}`);
  }
  let leaseMs = DEFAULT_LEASE_MS;
  if (body.leaseMs !== undefined) {
    if (typeof body.leaseMs !== 'number' || !Number.isFinite(body.leaseMs)) throw new ControlPlaneError('INVALID', 'leaseMs must be a number');
    leaseMs = Math.min(MAX_LEASE_MS, Math.max(MIN_LEASE_MS, Math.round(body.leaseMs)));
  }
  const own = {
    address: claim.address,
    ports: ownPorts,
    labels,
    locality: str(body.locality, 'locality'),
    network: str(body.network, 'network'),
    weight: body.weight === undefined || body.weight === null ? undefined : (body.weight as number),
  };
  let spec: Record<string, unknown>;
  let metadata: WireResource['metadata'];
  if (group === undefined) {
    spec = { address: claim.address, ports: ownPorts, labels: { ...labels, app: service }, ...(serviceAccount === undefined || serviceAccount === 'default' ? {} : { serviceAccount }) };
    for (const f of ['locality', 'network', 'weight'] as const) if (own[f] !== undefined) spec[f] = own[f];
    metadata = { name: workloadName({ namespace, service }, service, claim.address, firstPort(ownPorts)), namespace, labels: { app: service } };
  } else {
    const made = entryFromGroup(group, own, runsProbe);
    if (made.labels.app !== undefined && made.labels.app !== service) {
      throw new ControlPlaneError('FORBIDDEN', `${group.ref} gives its workloads label app=${made.labels.app}, but the workload is service "${service}"`);
    }
    made.labels.app = service;
    const templateSa = made.spec.serviceAccount as string | undefined;
    if (templateSa !== undefined && serviceAccount !== undefined && templateSa !== serviceAccount) {
      throw new ControlPlaneError('FORBIDDEN', `${group.ref} gives its workloads service account "${templateSa}", but the workload's is "${serviceAccount}"`);
    }
    spec = { ...made.spec, labels: made.labels, ...(templateSa === undefined && serviceAccount !== undefined && serviceAccount !== 'default' ? { serviceAccount } : {}) };
    metadata = { name: workloadName({ namespace, service }, groupName, claim.address, firstPort(made.spec.ports ?? {})), namespace, labels: made.labels, annotations: made.annotations };
  }
  if (Object.keys(spec.ports as object).length === 0) {
    throw new ControlPlaneError('INVALID', group === undefined ? 'ports must name at least one port, e.g. {"http": 8080}' : `ports must name at least one port: neither the registration nor ${group.ref}'s template names any`);
  }
  const entry: WireResource = { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata, spec };
  const checked = checkDocuments(fromObjects([entry], 'registration'), { analysis: 'off' });
  if (!checked.ok) {
    throw new ControlPlaneError('INVALID', 'registration is not a valid WorkloadEntry', { issues: checked.issues.ofLevel('error').map(String) });
  }
  const max = ctx.limits.maxRegistrationsPerWorkload;
  if (ctx.registry.owned(namespace, service) >= max && !ownsRecord(ctx, namespace, metadata.name, service)) {
    throw new ControlPlaneError(
      'LIMIT_EXCEEDED',
      `register: workload ${namespace}/${service} already has ${max} registered instances, the limit (maxRegistrationsPerWorkload, --max-registrations-per-workload); deregister some or raise the limit`,
    );
  }
  const rec = await ctx.registry.register(entry, service, leaseMs);
  // The workload runs the group's probe and reports its health (istioctl puts it in the VM's proxy config).
  sendJson(res, 200, group?.spec.probe === undefined || !runsProbe ? response(rec) : { ...response(rec), probe: group.spec.probe });
}

function ownsRecord(ctx: RequestContext, namespace: string, name: string, service: string): boolean {
  return ctx.registry.list().some((r) => r.service === service && r.entry.metadata.name === name && (r.entry.metadata.namespace ?? 'default') === namespace);
}

/** The service a workload token acts as (its records are the ones it may change); undefined for admin and insecure callers. */
function ownerOf(caller: WriterCaller): string | undefined {
  return caller?.role === 'workload' ? caller.service : undefined;
}

/** Routes `/v1/workloads[/...]`; `rest` is the path after the prefix, split on `/`. */
export async function workloadsApi(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, reader: Caller, rest: string[]): Promise<void> {
  const method = req.method ?? 'GET';
  if (rest.length === 0 && method === 'GET') {
    // A workload token lists the records it owns; an admin or viewer every record.
    const list = ctx.registry.list().filter((r) => reader?.role !== 'workload' || (r.entry.metadata.namespace === reader.namespace && r.service === reader.service));
    return sendJson(res, 200, { version: ctx.registry.version(), workloads: list.map(response) });
  }
  // Everything below changes the registry: never for a viewer token.
  const caller = requireWriter(reader, `${method} ${WORKLOADS_PATH}`);
  if (rest.length === 0 && method === 'POST') return register(req, res, ctx, caller);
  const [namespace, name, lease] = rest as [string, string, string | undefined];
  if (rest.length === 3 && lease === 'lease' && method === 'PUT') {
    requireSameWorkload(caller, undefined, namespace, 'renew');
    const rec = await ctx.registry.renew(namespace, name, ownerOf(caller));
    if (rec === undefined) throw new ControlPlaneError('NOT_FOUND', `workload ${namespace}/${name} is not registered (its lease ended?); register again`);
    return sendJson(res, 200, response(rec));
  }
  if (rest.length === 3 && lease === 'health' && method === 'PUT') {
    requireSameWorkload(caller, undefined, namespace, 'report health');
    const report = await readJson(req, Math.min(ctx.maxBodyBytes, MAX_HEALTH_BODY));
    if (typeof report.healthy !== 'boolean') throw new ControlPlaneError('INVALID', 'health report: "healthy" must be true or false, e.g. {"healthy": false, "message": "connection refused"}');
    const message = report.message === undefined || report.message === null ? undefined : str(report.message, 'message');
    // istiod takes health updates only for entries with the annotation (health/util.go
    // IsEligibleForHealthStatusUpdates: present, whatever its value); a condition on any other
    // entry would mean nothing (it is an endpoint whatever its status).
    const current = ctx.registry.list().find((r) => r.entry.metadata.name === name && (r.entry.metadata.namespace ?? 'default') === namespace);
    const owner = ownerOf(caller);
    if (current !== undefined && (owner === undefined || current.service === owner) && !Object.hasOwn(current.entry.metadata.annotations ?? {}, HEALTH_CHECKS_ANNOTATION)) {
      throw new ControlPlaneError('CONFLICT', `report health: workload ${namespace}/${name} is not health-checked (no ${HEALTH_CHECKS_ANNOTATION} annotation: its WorkloadGroup has no probe, or it registered without "healthChecks": true)`);
    }
    const rec = await ctx.registry.health(namespace, name, healthCondition(report.healthy, message?.slice(0, MAX_MESSAGE), new Date()), owner);
    if (rec === undefined) throw new ControlPlaneError('NOT_FOUND', `workload ${namespace}/${name} is not registered (its lease ended?); register again`);
    return sendJson(res, 200, response(rec));
  }
  if (rest.length === 2 && method === 'DELETE') {
    requireSameWorkload(caller, undefined, namespace, 'deregister');
    if (!(await ctx.registry.deregister(namespace, name, ownerOf(caller)))) throw new ControlPlaneError('NOT_FOUND', `workload ${namespace}/${name} is not registered`);
    return sendJson(res, 200, { deleted: true, name, namespace });
  }
  throw new ControlPlaneError('NOT_FOUND', `no such endpoint: ${method} ${req.url}`);
}
