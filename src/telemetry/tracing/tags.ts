/**
 * Span tags as an Istio sidecar's Envoy writes them: the tags of every HTTP span
 * (`source/common/tracing/http_tracer_impl.cc`, `tracer_impl.cc`: `component`, `node_id`, `zone`,
 * `guid:x-request-id`, `http.url`, `http.method`, `http.protocol`, `downstream_cluster`,
 * `user_agent`, `request_size`, `response_size`, `http.status_code`, `response_flags`,
 * `upstream_cluster`, `upstream_cluster.name`, `upstream_address`, `peer.address`, `error`), the
 * Istio tags istiod adds (`buildServiceTags` in `pilot/pkg/networking/core/tracing.go`:
 * `istio.canonical_revision`, `istio.canonical_service`, `istio.mesh_id`, `istio.namespace`,
 * `istio.cluster_id`) and the Telemetry's custom tags (literal, environment, request header, and
 * `formatter`: a substitution format string such as `%REQ(:PATH)%`, which istiod sends as Envoy's
 * `CustomTag.value`). Values are strings, as Envoy's tracers set them; a custom tag whose value is
 * empty is not set.
 *
 * @module
 */
import type { Attributes } from '@opentelemetry/api';
import type { TracingCustomTag } from '../../config/types/telemetry.ts';
import type { Headers } from '../../core/handler.ts';
import type { WorkloadIdentity } from '../../core/observe.ts';
import { compileSubstitution, FormatError, type TextFormatter } from '../access-log/format.ts';
import type { RequestRecord } from '../record.ts';

/** Envoy's default `max_path_tag_length`: `http.url` is cut to this many characters of path. */
export const MAX_PATH_TAG_LENGTH = 256;

/** The canonical service of a workload, as Istio's injector derives it from the labels. */
export function canonicalService(w: WorkloadIdentity): string {
  const l = w.labels;
  return l['service.istio.io/canonical-name'] ?? l['app.kubernetes.io/name'] ?? l.app ?? w.service;
}

/** The canonical revision, as Istio's injector derives it (`latest` when no label says). */
export function canonicalRevision(w: WorkloadIdentity): string {
  const l = w.labels;
  return l['service.istio.io/canonical-revision'] ?? l['app.kubernetes.io/version'] ?? l.version ?? 'latest';
}

/** The Istio tags of a workload's spans. */
export function istioTags(w: WorkloadIdentity, meshId: string, clusterId: string): Attributes {
  return {
    'istio.canonical_revision': canonicalRevision(w),
    'istio.canonical_service': canonicalService(w),
    'istio.mesh_id': meshId,
    'istio.namespace': w.namespace,
    'istio.cluster_id': clusterId,
  };
}

/** A sidecar's node id: `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local` (the service stands in for the pod name). */
export function nodeId(w: WorkloadIdentity, ip: string): string {
  return `sidecar~${ip}~${w.service}.${w.namespace}~${w.namespace}.svc.cluster.local`;
}

function one(h: Headers, name: string): string | undefined {
  const v = h[name];
  return typeof v === 'string' ? v : v?.join(',');
}

/** Custom tags compiled once per config: literals and environment values resolved, headers looked up per request. */
export interface CompiledTags {
  /** Literal and environment tags. */
  readonly fixed: Attributes;
  /** Request-header tags: `[tag, header name, default]`. */
  readonly headers: readonly (readonly [string, string, string | undefined])[];
  /** Formatter tags: `[tag, format]`, evaluated over the finished request. */
  readonly formatted: readonly (readonly [string, TextFormatter])[];
}

/**
 * Compiles custom tags (an environment tag reads the variable now, as Envoy reads it when it
 * loads the config). A formatter is compiled as Envoy's `FormatterCustomTag` does, empty values
 * omitted (`%REQ(x-missing)%` gives no tag, not `-`); one that does not parse, or uses an operator
 * meshlet does not have, is warned about and left out (Envoy refuses the whole listener then).
 */
export function compileTags(tags: Readonly<Record<string, TracingCustomTag>>, env: NodeJS.ProcessEnv = process.env, warn: (message: string) => void = () => {}): CompiledTags {
  const fixed: Attributes = {};
  const headers: [string, string, string | undefined][] = [];
  const formatted: [string, TextFormatter][] = [];
  for (const name of Object.keys(tags).sort()) {
    const t = tags[name] as TracingCustomTag;
    // Envoy sets a custom tag only when its value is not empty.
    if (t.literal !== undefined) {
      if (t.literal.value !== '') fixed[name] = t.literal.value;
    }
    else if (t.environment !== undefined) {
      const v = env[t.environment.name] ?? t.environment.defaultValue;
      if (v !== undefined && v !== '') fixed[name] = v;
    } else if (t.header !== undefined) headers.push([name, t.header.name.toLowerCase(), t.header.defaultValue]);
    else if (t.formatter !== undefined) {
      try {
        formatted.push([name, compileSubstitution(t.formatter.value, true)]);
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        warn(`meshlet: tracing custom tag ${JSON.stringify(name)}: formatter ${JSON.stringify(t.formatter.value)} ${e.message}; the tag is left out`);
      }
    }
  }
  return { fixed, headers, formatted };
}

/** Every custom tag of one finished request or call: literal and environment, request header, formatter (`record` is made only when a formatter needs it). */
export function customTags(c: CompiledTags, h: Headers, record: () => RequestRecord, into: Attributes): void {
  Object.assign(into, c.fixed);
  headerTags(c, h, into);
  if (c.formatted.length === 0) return;
  const r = record();
  for (const [tag, format] of c.formatted) {
    const v = format(r);
    if (v !== '') into[tag] = v;
  }
}

/** The request-header tags of one request. */
export function headerTags(c: CompiledTags, h: Headers, into: Attributes): void {
  for (const [tag, name, def] of c.headers) {
    const v = one(h, name) ?? def;
    if (v !== undefined && v !== '') into[tag] = v;
  }
}

/** `http.url` as Envoy builds it: scheme, authority, path (cut to {@link MAX_PATH_TAG_LENGTH}). */
export function httpUrl(scheme: string, authority: string, path: string): string {
  return `${scheme}://${authority}${path.length > MAX_PATH_TAG_LENGTH ? path.slice(0, MAX_PATH_TAG_LENGTH) : path}`;
}

/** `http.protocol` as Envoy writes it. */
export function httpProtocol(p: string): string {
  return p === 'http1' ? 'HTTP/1.1' : 'HTTP/2';
}

/**
 * Envoy's `error` rule: a 5xx, no response at all, or a gRPC status that maps to a 5xx
 * (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE, DATA_LOSS: Envoy's `grpcToHttpStatus`).
 */
export function isError(status: number, grpcStatus: number): boolean {
  if (status === 0 || status >= 500) return true;
  return grpcStatus === 2 || grpcStatus === 4 || grpcStatus === 13 || grpcStatus === 14 || grpcStatus === 15;
}

/** `outbound|9080|v1|reviews.default.svc.cluster.local` → `reviews.default.svc.cluster.local:9080`. */
export function hostPortOfCluster(cluster: string | undefined): string | undefined {
  if (cluster === undefined) return undefined;
  const parts = cluster.split('|');
  if (parts.length !== 4 || parts[3] === '') return undefined;
  return `${parts[3]}:${parts[1]}`;
}
