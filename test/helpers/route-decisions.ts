/**
 * Compiling YAML documents into a snapshot and asking its route table, for the route-compile
 * tests (src/routing/compile*.test.ts).
 */
import assert from 'node:assert/strict';
import { compileSnapshot, type Snapshot, type WorkloadInfo } from '../../src/routing/compile.ts';
import type { RequestHead } from '../../src/routing/request-head.ts';
import { NO_ROUTE, type RouteDecision } from '../../src/routing/route-table.ts';
import { validateYaml } from './config.ts';

/** The snapshot of `docs` (YAML documents, which must validate) for workload `wl`. */
export function compile(docs: readonly string[], wl: WorkloadInfo = { service: 'productpage' }): Snapshot {
  const { resources, errors } = validateYaml(docs.join('---\n'));
  assert.deepEqual(errors, []);
  return compileSnapshot(resources, wl);
}

/** A GET request head. */
export function req(authority: string, path = '/', headers: Record<string, string> = {}): RequestHead {
  return { method: 'GET', scheme: 'http', authority, path, headers };
}

/** The route decision for `h` (fails the test when there is none). */
export function decide(s: Snapshot, h: RequestHead, draw = 0): RouteDecision {
  const d = s.routes.route(h, draw);
  if (d === undefined || d === NO_ROUTE) assert.fail(`no decision for ${h.authority}${h.path}: ${String(d)}`);
  return d;
}
