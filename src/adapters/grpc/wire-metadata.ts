/**
 * The metadata of a mesh call's attempt, with the headers the mesh itself adds kept beside
 * grpc-js's store rather than in it: the headers the pipeline added (Istio's metadata-exchange
 * headers on every call to the mesh, a route's header operations), `grpc-timeout` and
 * `x-envoy-expected-rq-timeout-ms`. They are checked once ({@link requestMetadataOf}) and written
 * after the store's entries when the attempt turns the metadata into its HTTP/2 headers
 * (`toHttp2Headers`, attempt.ts), instead of being copied into the store entry by entry per call.
 *
 * @module
 */
import type { Metadata, MetadataOptions } from '@grpc/grpc-js';
import { newHeaders } from '../../core/headers.ts';
import type { GrpcJs } from './grpc-js.ts';

/** Checked headers for the wire: name → value, or several values. */
export type WireHeaders = Record<string, string | string[]>;

/** An attempt's metadata ({@link wireMetadataOf}). */
export interface WireMetadata extends Metadata {
  /** Headers written after the store's entries (checked already), if any: shared by the attempts that add the same. */
  wire: WireHeaders | undefined;
  /** This attempt's own headers written after those (checked already): values new on every call, such as `x-request-id`. */
  own: WireHeaders | undefined;
  /**
   * `grpc-timeout`'s value (`''` for none), or it and `x-envoy-expected-rq-timeout-ms`'s: one
   * field, the pair shared by the attempts that send the same (no field more per attempt).
   */
  timeout: string | TimeoutHeaders;
}

/** `grpc-timeout` and `x-envoy-expected-rq-timeout-ms` values sent together. */
export interface TimeoutHeaders {
  readonly grpc: string;
  readonly expected: string;
}

/** Whether `md` is an attempt's metadata made by {@link wireMetadataOf}. */
export function isWireMetadata(md: Metadata): md is WireMetadata {
  return 'wire' in md && 'timeout' in md;
}

type WireMetadataClass = new (options?: MetadataOptions) => WireMetadata;

/** grpc-js's own store of a Metadata's values: lower-cased name → values (strings, or Buffers for `-bin` names). */
export type MetadataStore = Map<string, (string | Buffer)[]>;

/** grpc-js's store of a Metadata's values (`internalRepr`), when it has one. */
export function storeOf(md: Metadata): MetadataStore | undefined {
  const store = (md as unknown as { internalRepr?: unknown }).internalRepr;
  return store instanceof Map ? (store as MetadataStore) : undefined;
}

/** The class, per grpc-js module (an app may load more than one copy). */
const classes = new WeakMap<GrpcJs, WireMetadataClass>();

/**
 * A copy of `caller` (its values; a Buffer copied, as `clone()` does) as an attempt's metadata,
 * or undefined when this grpc-js keeps its values somewhere {@link storeOf} does not find (the
 * caller then puts every header in the store, as grpc-js would).
 */
export function wireMetadataOf(g: GrpcJs, caller: Metadata): WireMetadata | undefined {
  const from = storeOf(caller);
  if (from === undefined) return undefined;
  let C = classes.get(g);
  if (C === undefined) {
    C = wireMetadataClass(g);
    classes.set(g, C);
  }
  const md = new C(caller.getOptions());
  const to = storeOf(md);
  if (to === undefined) return undefined;
  copyStore(from, to);
  return md;
}

function copyStore(from: MetadataStore, to: MetadataStore): void {
  for (const [k, values] of from) to.set(k, values.map(copyValue));
}

function copyValue(v: string | Buffer): string | Buffer {
  return typeof v === 'string' ? v : Buffer.from(v);
}

function wireMetadataClass(g: GrpcJs): WireMetadataClass {
  return class AttemptMetadata extends g.Metadata implements WireMetadata {
    wire: WireHeaders | undefined = undefined;
    own: WireHeaders | undefined = undefined;
    timeout: string | TimeoutHeaders = '';

    override clone(): AttemptMetadata {
      const md = new AttemptMetadata(this.getOptions());
      const from = storeOf(this);
      const to = storeOf(md);
      if (from !== undefined && to !== undefined) copyStore(from, to);
      md.wire = this.wire;
      md.own = this.own;
      md.timeout = this.timeout;
      return md;
    }

    override toHttp2Headers(): ReturnType<Metadata['toHttp2Headers']> {
      const h = super.toHttp2Headers();
      if (this.wire !== undefined) writeWire(h, this.wire);
      if (this.own !== undefined) writeWire(h, this.own);
      const t = this.timeout;
      if (typeof t !== 'string') {
        h['grpc-timeout'] = t.grpc;
        h['x-envoy-expected-rq-timeout-ms'] = t.expected;
      } else if (t !== '') h['grpc-timeout'] = t;
      return h;
    }

    override get(key: string): (string | Buffer)[] {
      const values = super.get(key);
      const k = key.toLowerCase();
      const v = this.own?.[k] ?? this.wire?.[k];
      return v === undefined ? values : [...(typeof v === 'string' ? [v] : v), ...values];
    }

    override set(key: string, value: string | Buffer): void {
      this.#drop(key);
      super.set(key, value);
    }

    override remove(key: string): void {
      this.#drop(key);
      super.remove(key);
    }

    /** Takes a name off the wire headers (copies: clones share them). */
    #drop(key: string): void {
      const k = key.toLowerCase();
      this.wire = without(this.wire, k);
      this.own = without(this.own, k);
    }
  };
}

/** `w` without `k` (a copy when it had it). */
function without(w: WireHeaders | undefined, k: string): WireHeaders | undefined {
  if (w === undefined || !(k in w)) return w;
  const rest = newHeaders<WireHeaders>();
  for (const n in w) if (n !== k) rest[n] = w[n] as string | string[];
  return rest;
}

/** Writes checked headers into grpc-js's HTTP/2 headers; values add()ed to a name after the mesh set it (nothing in grpc-js does) come after. */
function writeWire(h: ReturnType<Metadata['toHttp2Headers']>, w: WireHeaders): void {
  for (const k in w) {
    const v = w[k] as string | string[];
    const added = h[k];
    h[k] = added === undefined ? v : [...(typeof v === 'string' ? [v] : v), ...(Array.isArray(added) ? added : [String(added)])];
  }
}
