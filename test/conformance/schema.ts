/**
 * Schema coverage: every field that Istio's CRD schema (`crd-all.gen.yaml`, copied as the field
 * list `istio/crd-fields.json`) declares for a kind meshlet validates must be a field meshlet
 * knows — accepted, or accepted with a "not supported by meshlet" warning, never "unknown
 * field". This is what catches newer Istio API fields.
 */
import { readFileSync } from 'node:fs';
import { IssueList } from '../../src/config/issues.ts';
import { fromObjects } from '../../src/config/load.ts';
import { validateDocuments } from '../../src/config/validate/index.ts';

/** One field of Istio's CRD schema: `spec.http.[].match.[].uri` (`[]` a list item, `{}` a map value). */
export interface CrdField {
  readonly kind: string;
  readonly path: string;
  readonly type: string;
}

const API: Readonly<Record<string, string>> = {
  EnvoyFilter: 'networking.istio.io/v1alpha3',
  PeerAuthentication: 'security.istio.io/v1',
  RequestAuthentication: 'security.istio.io/v1',
  AuthorizationPolicy: 'security.istio.io/v1',
  Telemetry: 'telemetry.istio.io/v1',
};

/** The CRD fields of the kinds meshlet validates. */
export function crdFields(): CrdField[] {
  const file = new URL('./istio/crd-fields.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { fields: CrdField[] }).fields;
}

const PLACEHOLDER: Readonly<Record<string, unknown>> = { string: 'x', integer: 1, number: 1, boolean: true, array: [], object: {} };

/** A spec that sets `field` (and what leads to it) to a placeholder of its type. */
function specWith(field: CrdField): Record<string, unknown> {
  const segs = field.path.split('.').slice(1);
  const root: Record<string, unknown> = {};
  let cur: Record<string, unknown> = root;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as string;
    if (seg === '[]' || seg === '{}') continue;
    const next = segs[i + 1];
    const value: unknown = i === segs.length - 1 ? (PLACEHOLDER[field.type] ?? {}) : next === '[]' ? [{}] : next === '{}' ? { k: {} } : {};
    cur[seg] = value;
    cur = (next === '[]' ? (value as unknown[])[0] : next === '{}' ? (value as Record<string, unknown>).k : value) as Record<string, unknown>;
  }
  return root;
}

/**
 * meshlet validates the fields of an EnvoyFilter patch only when the patch is a local rate limit
 * one (it skips the others whole), so a patch field is set on such a patch: an HTTP filter
 * inserting the local rate limit filter, for whatever the field leaves unset.
 */
function asRateLimitPatch(written: Record<string, unknown>): Record<string, unknown> {
  const spec = structuredClone(written); // the placeholders are shared
  const patches = spec.configPatches;
  if (!Array.isArray(patches) || typeof patches[0] !== 'object' || patches[0] === null) return spec;
  const p = patches[0] as Record<string, unknown>;
  p.applyTo ??= 'HTTP_FILTER';
  p.patch ??= {};
  const patch = p.patch as Record<string, unknown>;
  patch.operation ??= 'INSERT_BEFORE';
  patch.value ??= {
    name: 'envoy.filters.http.local_ratelimit',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit', stat_prefix: 'x' },
  };
  return spec;
}

/** The CRD fields meshlet reports as unknown, with its message. */
export function unknownFields(fields: readonly CrdField[] = crdFields()): string[] {
  const out: string[] = [];
  for (const f of fields) {
    const issues = new IssueList();
    const spec = f.kind === 'EnvoyFilter' ? asRateLimitPatch(specWith(f)) : specWith(f);
    const doc = { apiVersion: API[f.kind] ?? 'networking.istio.io/v1', kind: f.kind, metadata: { name: 'x' }, spec };
    validateDocuments(fromObjects([doc]), {}, issues);
    for (const i of issues.all) if (/unknown field/.test(i.message)) out.push(`${f.kind} ${f.path}: ${i.path} ${i.message}`);
  }
  return out;
}
