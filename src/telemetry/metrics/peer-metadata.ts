/**
 * Istio's HTTP metadata exchange: a sidecar tells its peer who it is in two request headers,
 * `x-envoy-peer-metadata-id` (the node ID, a cache key) and `x-envoy-peer-metadata` (base64 of
 * a serialized `google.protobuf.Struct`), so the server side can label its metrics with the
 * source workload (istio/proxy `source/extensions/filters/http/peer_metadata/filter.cc`
 * `MXPropagationMethod`, and `extensions/common/metadata_object.cc`
 * `convertWorkloadMetadataToStruct` / `convertStructToWorkloadMetadata`).
 *
 * The Struct has `NAME` (instance), `NAMESPACE`, `WORKLOAD_NAME`, `CLUSTER_ID`, `OWNER` (when
 * the workload type is known) and `LABELS` (`service.istio.io/canonical-name`,
 * `service.istio.io/canonical-revision`, `app`, `version`). A receiver reads exactly those keys
 * and ignores the rest (so the full node metadata older proxies sent decodes too).
 *
 * The protobuf wire format is written and read with core/protobuf.ts (Struct, Value and
 * ListValue are three small messages); serialization is deterministic (map keys sorted), as the proxy's.
 *
 * @module
 */

import { ProtoReader, ProtoWriter } from '../../core/protobuf.ts';

/** The node-ID header. */
export const PEER_ID_HEADER = 'x-envoy-peer-metadata-id';
/** The metadata header (base64 of a serialized `google.protobuf.Struct`). */
export const PEER_METADATA_HEADER = 'x-envoy-peer-metadata';

/** `service.istio.io/canonical-name`. */
export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
/** `service.istio.io/canonical-revision`. */
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';
/** `service.istio.io/workload-name`: a WorkloadEntry's workload name, when set. */
export const WORKLOAD_NAME_LABEL = 'service.istio.io/workload-name';

/** What a peer says about itself (empty strings for what it did not say). */
export interface PeerMetadata {
  /** `NAME`: the instance (a pod's name). */
  readonly instance: string;
  readonly namespace: string;
  /** `WORKLOAD_NAME`. */
  readonly workload: string;
  /** `CLUSTER_ID`. */
  readonly cluster: string;
  readonly canonicalName: string;
  readonly canonicalRevision: string;
  /** The `app` label. */
  readonly app: string;
  /** The `version` label. */
  readonly version: string;
}

const has = (labels: Readonly<Record<string, string>>, k: string): boolean => Object.hasOwn(labels, k);

/**
 * Istio's canonical service name (`pkg/kube/labels` `CanonicalService`): the
 * `service.istio.io/canonical-name` label, else `app.kubernetes.io/name`, else `app`, else the
 * workload name.
 */
export function canonicalName(labels: Readonly<Record<string, string>>, workloadName: string): string {
  for (const k of [CANONICAL_NAME_LABEL, 'app.kubernetes.io/name', 'app']) if (has(labels, k)) return labels[k] as string;
  return workloadName;
}

/** The canonical revision: `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else `version`, else `latest`. */
export function canonicalRevision(labels: Readonly<Record<string, string>>): string {
  for (const k of [CANONICAL_REVISION_LABEL, 'app.kubernetes.io/version', 'version']) if (has(labels, k)) return labels[k] as string;
  return 'latest';
}

/** A workload's own metadata as a sidecar announces it (canonical labels defaulted as the injector sets them). */
export function localPeerMetadata(w: { readonly workload: string; readonly namespace: string; readonly labels: Readonly<Record<string, string>>; readonly cluster: string }): PeerMetadata {
  return {
    instance: w.workload,
    namespace: w.namespace,
    workload: w.workload,
    cluster: w.cluster,
    canonicalName: canonicalName(w.labels, w.workload),
    canonicalRevision: canonicalRevision(w.labels),
    app: has(w.labels, 'app') ? (w.labels['app'] as string) : '',
    version: has(w.labels, 'version') ? (w.labels['version'] as string) : '',
  };
}

/** The node ID a sidecar sends in {@link PEER_ID_HEADER}: `sidecar~<ip>~<instance>.<namespace>~<namespace>.svc.cluster.local`. */
export function nodeId(ip: string, p: PeerMetadata): string {
  return `sidecar~${ip}~${p.instance}.${p.namespace}~${p.namespace}.svc.cluster.local`;
}

// ── protobuf wire format (core/protobuf.ts): Struct {1: map<string, Value>}, Value {oneof 1..6}, ListValue {1: repeated Value} ──

type StructValue = string | number | boolean | null | StructObject | StructValue[];
interface StructObject {
  [key: string]: StructValue;
}

function encodeValue(v: StructValue): ProtoWriter {
  const w = new ProtoWriter();
  // string_value (3) is a oneof member: written even when empty.
  if (typeof v === 'string') w.bytes(3, Buffer.from(v, 'utf8'));
  else if (v !== null && typeof v === 'object' && !Array.isArray(v)) w.message(5, encodeStruct(v));
  else throw new TypeError(`peer metadata: only strings and structs are written, got ${typeof v}`);
  return w;
}

function encodeStruct(s: StructObject): ProtoWriter {
  const w = new ProtoWriter();
  for (const key of Object.keys(s).sort()) {
    const entry = new ProtoWriter();
    entry.bytes(1, Buffer.from(key, 'utf8'));
    entry.message(2, encodeValue(s[key] as StructValue));
    w.message(1, entry);
  }
  return w;
}

function decodeValue(r: ProtoReader, depth: number): StructValue {
  let value: StructValue = null;
  r.fields((f, wire) => {
    if (f === 3 && wire === 2) value = r.string();
    else if (f === 5 && wire === 2) value = decodeStruct(r.sub(), depth + 1);
    else if (f === 2 && wire === 1) value = r.double();
    else if (f === 4 && wire === 0) value = r.varint() !== 0;
    else if (f === 6 && wire === 2) {
      const list: StructValue[] = [];
      const lr = r.sub();
      lr.fields((lf, lw) => {
        if (lf !== 1 || lw !== 2) return false;
        list.push(decodeValue(lr.sub(), depth + 1));
        return true;
      });
      value = list;
    } else return false;
    return true;
  });
  return value;
}

function decodeStruct(r: ProtoReader, depth: number): StructObject {
  if (depth > 8) throw new RangeError('nested too deep');
  const out: StructObject = Object.create(null);
  r.fields((f, wire) => {
    if (f !== 1 || wire !== 2) return false;
    const er = r.sub();
    let key: string | undefined;
    let value: StructValue = null;
    er.fields((ef, ew) => {
      if (ew !== 2) return false;
      if (ef === 1) key = er.string();
      else if (ef === 2) value = decodeValue(er.sub(), depth);
      else return false;
      return true;
    });
    if (key !== undefined) out[key] = value;
    return true;
  });
  return out;
}

/** The Struct a sidecar sends for `p` (`convertWorkloadMetadataToStruct`). */
function toStruct(p: PeerMetadata): StructObject {
  const s: StructObject = {};
  if (p.instance !== '') s['NAME'] = p.instance;
  if (p.namespace !== '') s['NAMESPACE'] = p.namespace;
  if (p.workload !== '') s['WORKLOAD_NAME'] = p.workload;
  if (p.cluster !== '') s['CLUSTER_ID'] = p.cluster;
  const labels: StructObject = {};
  if (p.canonicalName !== '') labels[CANONICAL_NAME_LABEL] = p.canonicalName;
  if (p.canonicalRevision !== '') labels[CANONICAL_REVISION_LABEL] = p.canonicalRevision;
  if (p.app !== '') labels['app'] = p.app;
  if (p.version !== '') labels['version'] = p.version;
  s['LABELS'] = labels;
  return s;
}

/** The value of {@link PEER_METADATA_HEADER} for `p`: base64 of the serialized Struct. */
export function encodePeerMetadata(p: PeerMetadata): string {
  return encodeStruct(toStruct(p)).finish().toString('base64');
}

const str = (v: StructValue | undefined): string => (typeof v === 'string' ? v : '');

/**
 * Reads a {@link PEER_METADATA_HEADER} value (`convertStructToWorkloadMetadata`); undefined
 * when it is not base64 of a Struct (the proxy then knows nothing of the peer either).
 */
export function decodePeerMetadata(value: string): PeerMetadata | undefined {
  if (value === '') return undefined;
  let s: StructObject;
  try {
    s = decodeStruct(new ProtoReader(Buffer.from(value, 'base64')), 0);
  } catch {
    return undefined;
  }
  const raw = s['LABELS'];
  const labels: StructObject = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? raw : Object.create(null);
  return {
    instance: str(s['NAME']),
    namespace: str(s['NAMESPACE']),
    workload: str(s['WORKLOAD_NAME']),
    cluster: str(s['CLUSTER_ID']),
    canonicalName: str(labels[CANONICAL_NAME_LABEL]),
    canonicalRevision: str(labels[CANONICAL_REVISION_LABEL]),
    app: str(labels['app']),
    version: str(labels['version']),
  };
}

/**
 * Decodes header values with a small bounded cache, as the proxy's `MXMethod` does (a peer
 * sends the same value on every request). The proxy keys it by the node ID alone; here the key
 * is the ID and the value, so a caller cannot make its ID stand for another peer's metadata.
 */
export class PeerMetadataCache {
  readonly #max: number;
  readonly #cache = new Map<string, PeerMetadata | undefined>();
  constructor(max = 500) {
    this.#max = max;
  }
  /** The last lookup's inputs and answer: a caller's requests carry the same headers (compared, not hashed). */
  #lastId: string | undefined;
  #lastValue: string | undefined;
  #last: PeerMetadata | undefined;
  get(id: string, value: string): PeerMetadata | undefined {
    if (value === this.#lastValue && id === this.#lastId) return this.#last;
    const p = this.#lookUp(id, value);
    this.#lastId = id;
    this.#lastValue = value;
    this.#last = p;
    return p;
  }
  /** From the cache, or decoded (a new key: the two headers joined, hashed whole). */
  #lookUp(id: string, value: string): PeerMetadata | undefined {
    const key = `${id}\n${value}`;
    if (this.#cache.has(key)) return this.#cache.get(key);
    const p = decodePeerMetadata(value);
    if (this.#cache.size >= this.#max) {
      // Drop the oldest quarter, as the proxy does.
      let n = Math.ceil(this.#max / 4);
      for (const k of this.#cache.keys()) {
        if (n-- <= 0) break;
        this.#cache.delete(k);
      }
    }
    this.#cache.set(key, p);
    return p;
  }
}
