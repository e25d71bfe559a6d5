/**
 * `/v1/resources`: the config API behind `meshlet apply | get | delete` (admin tokens; a viewer token may GET).
 * `GET [?kind=&namespace=]` lists, `GET <Kind>/<ns>/<name>` reads one, `POST` applies a YAML
 * or JSON body of one or more documents, `DELETE <Kind>/<ns>/<name>` deletes.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IssueList } from '../config/issues.ts';
import { parseText } from '../config/load.ts';
import { classifyKind } from '../config/validate/api-kinds.ts';
import { SkippedKinds } from '../config/validate/skipped-kinds.ts';
import { toWire, type WireResource } from '../control-plane/protocol.ts';
import { ControlPlaneError } from './errors.ts';
import { type Caller, readBody, remoteAddress, type RequestContext, requireAdmin, requireReader, sendJson } from './http.ts';
import { resolveKind } from './kinds.ts';

function kindOf(text: string): string {
  const kind = resolveKind(text);
  if (kind === undefined) throw new ControlPlaneError('INVALID', `unknown kind "${text}"`);
  return kind;
}

function origin(req: IncomingMessage, caller: Caller, verb: string): string {
  return `${verb} by ${caller?.subject ?? 'anonymous (insecure)'} from ${remoteAddress(req)}`;
}

async function apply(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller): Promise<void> {
  const text = await readBody(req, ctx.maxBodyBytes);
  const issues = new IssueList();
  const docs = parseText(text, 'request', issues);
  if (issues.hasErrors) {
    throw new ControlPlaneError('INVALID', 'the request body is not valid YAML or JSON', { issues: issues.ofLevel('error').map(String) });
  }
  // Kinds meshlet does not apply (a manifest's Deployments, Gateways, …) are skipped with one
  // notice per kind, as when loading files; everything else is validated by the store.
  const resources: WireResource[] = [];
  const skipped = new SkippedKinds();
  const refused: string[] = [];
  for (const d of docs) {
    const v = d.value as Partial<WireResource> | null;
    if (v !== null && typeof v === 'object' && typeof v.apiVersion === 'string' && typeof v.kind === 'string') {
      const decision = classifyKind(v.apiVersion, v.kind);
      if (decision.action === 'skip') {
        skipped.add(v as Record<string, unknown>, v.apiVersion, v.kind, decision, d.source, 'default');
        continue;
      }
      if (decision.action === 'error') refused.push(`request${d.source.line === undefined ? '' : ` line ${d.source.line}`}: ${v.kind} ${String(v.metadata?.name ?? '(unnamed)')}: ${decision.message}`);
    }
    resources.push(d.value as WireResource);
  }
  if (refused.length > 0) throw new ControlPlaneError('INVALID', 'the request has resources meshlet cannot read', { issues: refused });
  const notices = new IssueList();
  skipped.report(notices);
  if (resources.length === 0 && notices.all.length > 0) {
    throw new ControlPlaneError('INVALID', 'nothing to apply: every resource is of a kind meshlet does not apply', { issues: notices.all.map(String) });
  }
  const answer = await ctx.store.apply(resources, origin(req, caller, 'apply'));
  sendJson(res, 200, { ...answer, warnings: [...notices.all.map(String), ...answer.warnings] });
}

/** Routes `/v1/resources[/...]`; `rest` is the path after the prefix, split on `/`. */
export async function resourcesApi(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, caller: Caller, rest: string[], query: URLSearchParams): Promise<void> {
  const method = req.method ?? 'GET';
  // Reading is for admin and viewer tokens; anything else (apply, delete) for admin tokens only.
  if (method === 'GET') requireReader(caller, 'the config API');
  else requireAdmin(caller, `${method} on the config API`);
  if (rest.length === 0 && method === 'POST') return apply(req, res, ctx, caller);
  const state = ctx.store.current();
  if (rest.length === 0 && method === 'GET') {
    const kindText = query.get('kind');
    const kind = kindText === null || kindText === '' ? undefined : kindOf(kindText);
    const ns = query.get('namespace') ?? '';
    const resources = state.resources.filter((r) => (kind === undefined || r.kind === kind) && (ns === '' || r.metadata.namespace === ns)).map(toWire);
    return sendJson(res, 200, { version: state.version, resources });
  }
  if (rest.length === 3) {
    const kind = kindOf(rest[0]!);
    const [, namespace, name] = rest as [string, string, string];
    if (method === 'GET') {
      const r = state.resources.find((x) => x.kind === kind && x.metadata.namespace === namespace && x.metadata.name === name);
      if (r === undefined) throw new ControlPlaneError('NOT_FOUND', `${kind} ${namespace}/${name} not found`);
      return sendJson(res, 200, toWire(r));
    }
    if (method === 'DELETE') {
      const answer = await ctx.store.delete(kind, namespace, name, origin(req, caller, 'delete'));
      if (!answer.deleted) throw new ControlPlaneError('NOT_FOUND', `${kind} ${namespace}/${name} not found`);
      return sendJson(res, 200, answer);
    }
  }
  throw new ControlPlaneError('NOT_FOUND', `no such endpoint: ${method} ${req.url}`);
}
