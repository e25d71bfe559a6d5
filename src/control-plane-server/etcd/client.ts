/**
 * A small etcd v3 client over etcd's JSON gRPC-gateway (`POST /v3/kv/range`, `/v3/kv/put`,
 * `/v3/kv/deleterange`, `/v3/kv/txn`, `/v3/lease/grant|keepalive|revoke`; the streaming
 * `/v3/watch` is in `watch.ts`). Keys and values travel base64-encoded and int64s as strings;
 * zero values (`succeeded: false`, `count: 0`, `TTL: 0`, event type `PUT`) are omitted by the
 * gateway, so every field is read with a default.
 *
 * It uses its own undici Agent (never the mesh), tries the endpoints in turn (sticking to the
 * last one that answered) and puts a timeout on every unary call. Errors name the endpoint
 * and the operation.
 *
 * @module
 */
import { Agent } from 'undici';
import { MeshletError } from '../../core/errors.ts';
import { b64, type Compare, decodeKv, encodeCompare, encodeOp, type KeyValue, num, prefixRangeEnd, type TxnOp } from './codec.ts';

export type { Compare, KeyValue, TxnOp } from './codec.ts';

/** Options of {@link EtcdClient}. */
export interface EtcdClientOptions {
  /** Timeout of each unary call on one endpoint, in ms. @defaultValue 5000 */
  readonly timeoutMs?: number;
  /** TCP connect timeout, in ms. @defaultValue 2000 */
  readonly connectTimeoutMs?: number;
  /** TLS to `https://` endpoints (PEM): etcd's CA and this client's certificate and key (etcd's `--client-cert-auth`). */
  readonly tls?: EtcdTlsOptions;
}

/** TLS material for etcd, in PEM, as etcdctl's `--cacert`, `--cert` and `--key` take it. */
export interface EtcdTlsOptions {
  /** CAs that verify etcd's certificate. @defaultValue the system's */
  readonly ca?: string;
  /** This client's certificate (chain), for etcd's client-certificate authentication. */
  readonly cert?: string;
  /** Its private key. */
  readonly key?: string;
}

/** Result of one txn operation (only the fields of its kind are set). */
export interface TxnOpResult {
  /** What a `range` op read. */
  readonly kvs?: readonly KeyValue[];
  /** How many keys a `delete` op deleted. */
  readonly deleted?: number;
}

/** Result of {@link EtcdClient.txn}. */
export interface TxnResult {
  /** Whether the compares held (the success branch ran). */
  readonly succeeded: boolean;
  /** The store revision after the txn (the commit revision when it wrote). */
  readonly revision: number;
  readonly responses: readonly TxnOpResult[];
}

/** Health of the connection to etcd as last observed. */
export interface EtcdHealth {
  /** False after a call failed on every endpoint or a watch stream broke, until something succeeds. */
  readonly healthy: boolean;
  /** What failed last, while unhealthy. */
  readonly error?: string;
}

/** An etcd call failed: names the endpoint(s) and the operation; `grpcCode` when etcd answered with an error. */
export class EtcdError extends MeshletError {
  /** The operation, e.g. `kv/txn`. */
  readonly operation: string;
  /** The gRPC status code etcd answered with, when it answered. */
  readonly grpcCode: number | undefined;
  constructor(operation: string, message: string, options: { cause?: unknown; grpcCode?: number; httpStatus?: number } = {}) {
    super('MESHLET_ERR_CONTROL_PLANE', message, { cause: options.cause, httpStatus: options.httpStatus });
    this.name = 'EtcdError';
    this.operation = operation;
    this.grpcCode = options.grpcCode;
  }
}

/** gRPC codes after which another endpoint may answer: UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN ("no leader"). */
const RETRYABLE_GRPC = new Set([14, 4, 2]);

type Json = Record<string, unknown>;

function headerRevision(res: Json): number {
  return num((res['header'] as Json | undefined)?.['revision']);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return err.message;
    const code = (err as { code?: string }).code;
    return code !== undefined && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

/** An etcd v3 client over the JSON gateway, with endpoint failover. */
export class EtcdClient {
  readonly #endpoints: readonly string[];
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  #current = 0;
  /** The open streams (watches) by endpoint, each with the abort that drops it. */
  readonly #streams = new Map<string, Set<AbortController>>();
  #health: EtcdHealth = { healthy: true };
  readonly #healthListeners: ((h: EtcdHealth) => void)[] = [];
  #closed = false;

  /** @param endpoints base URLs such as `http://127.0.0.1:2379` (a trailing slash is dropped). */
  constructor(endpoints: readonly string[], options: EtcdClientOptions = {}) {
    if (endpoints.length === 0) throw new EtcdError('connect', 'etcd: no endpoints given');
    this.#endpoints = endpoints.map((e) => {
      const url = new URL(e.includes('://') ? e : `http://${e}`);
      return url.origin;
    });
    this.#timeoutMs = options.timeoutMs ?? 5000;
    const tls = options.tls ?? {};
    const connect = { timeout: options.connectTimeoutMs ?? 2000, ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }) };
    this.#agent = new Agent({ connect, keepAliveTimeout: 10_000 });
  }

  /** The endpoints, normalised to origins. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Reachability as last observed by a call, a watch stream or the health probe ({@link EtcdHealthProbe}). */
  get health(): EtcdHealth {
    return this.#health;
  }

  /** Called when {@link health} flips between healthy and unhealthy. */
  onHealthChange(listener: (h: EtcdHealth) => void): void {
    this.#healthListeners.push(listener);
  }

  /** Records an observation (used by calls and by watch streams). */
  reportHealth(error?: string): void {
    const healthy = error === undefined;
    const changed = healthy !== this.#health.healthy;
    this.#health = healthy ? { healthy } : { healthy, error };
    if (changed) for (const l of this.#healthListeners) l(this.#health);
  }

  /** The value stored under `key`, or undefined. */
  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.call('kv/range', '/v3/kv/range', { key: b64(key) });
    const kvs = (res['kvs'] as Json[] | undefined) ?? [];
    return kvs[0] === undefined ? undefined : decodeKv(kvs[0]);
  }

  /** Every key starting with `prefix`, sorted by key, and the revision they were read at. */
  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const res = await this.call('kv/range', '/v3/kv/range', { key: b64(prefix), range_end: prefixRangeEnd(prefix) });
    const kvs = ((res['kvs'] as Json[] | undefined) ?? []).map(decodeKv);
    return { kvs, revision: headerRevision(res) };
  }

  /** Stores `value` under `key` (attached to `lease` when given); with `prevKv`, also resolves to what it replaced. */
  async put(key: string, value: string, options: { lease?: string; prevKv?: boolean } = {}): Promise<{ revision: number; prev?: KeyValue }> {
    const body: Json = { key: b64(key), value: b64(value) };
    if (options.lease !== undefined && options.lease !== '') body['lease'] = options.lease;
    if (options.prevKv === true) body['prev_kv'] = true;
    const res = await this.call('kv/put', '/v3/kv/put', body);
    const prev = res['prev_kv'] as Json | undefined;
    return prev === undefined ? { revision: headerRevision(res) } : { revision: headerRevision(res), prev: decodeKv(prev) };
  }

  /**
   * Deletes `key` (or every key with the prefix when `prefix: true`); resolves to how many were
   * deleted and, with `prevKv`, what they held.
   */
  async delete(key: string, options: { prefix?: boolean; prevKv?: boolean } = {}): Promise<{ deleted: number; revision: number; prev: KeyValue[] }> {
    const body: Json = { key: b64(key) };
    if (options.prefix === true) body['range_end'] = prefixRangeEnd(key);
    if (options.prevKv === true) body['prev_kv'] = true;
    const res = await this.call('kv/deleterange', '/v3/kv/deleterange', body);
    return { deleted: num(res['deleted']), revision: headerRevision(res), prev: ((res['prev_kvs'] as Json[] | undefined) ?? []).map(decodeKv) };
  }

  /** An atomic `if (all compares hold) success else failure`. */
  async txn(compare: readonly Compare[], success: readonly TxnOp[], failure: readonly TxnOp[] = []): Promise<TxnResult> {
    const res = await this.call('kv/txn', '/v3/kv/txn', {
      compare: compare.map(encodeCompare),
      success: success.map(encodeOp),
      failure: failure.map(encodeOp),
    });
    const responses = ((res['responses'] as Json[] | undefined) ?? []).map((r): TxnOpResult => {
      const range = r['response_range'] as Json | undefined;
      if (range !== undefined) return { kvs: ((range['kvs'] as Json[] | undefined) ?? []).map(decodeKv) };
      const del = r['response_delete_range'] as Json | undefined;
      if (del !== undefined) return { deleted: num(del['deleted']) };
      return {};
    });
    return { succeeded: res['succeeded'] === true, revision: headerRevision(res), responses };
  }

  /** Compacts the key-value history up to `revision` (older revisions can no longer be watched). */
  async compact(revision: number): Promise<void> {
    await this.call('kv/compaction', '/v3/kv/compaction', { revision: String(revision), physical: true });
  }

  /** Grants a lease; etcd may raise a too-short TTL to its minimum, so the granted TTL is returned. */
  async grantLease(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    const res = await this.call('lease/grant', '/v3/lease/grant', { TTL: String(ttlSeconds) });
    if (res['error'] !== undefined && res['error'] !== '') throw new EtcdError('lease/grant', `etcd lease/grant: ${String(res['error'])}`);
    return { id: String(res['ID']), ttlSeconds: num(res['TTL']) };
  }

  /** Refreshes a lease once; resolves to its TTL in seconds, 0 when the lease is gone. */
  async keepAlive(id: string): Promise<number> {
    const res = await this.call('lease/keepalive', '/v3/lease/keepalive', { ID: id });
    const error = res['error'] as Json | undefined;
    if (error !== undefined) throw new EtcdError('lease/keepalive', `etcd lease/keepalive: ${String(error['message'] ?? JSON.stringify(error))}`);
    return num((res['result'] as Json | undefined)?.['TTL']);
  }

  /** Revokes a lease (deleting its keys); resolves false when it did not exist. */
  async revokeLease(id: string): Promise<boolean> {
    try {
      await this.call('lease/revoke', '/v3/lease/revoke', { ID: id });
      return true;
    } catch (err) {
      if (err instanceof EtcdError && err.grpcCode === 5) return false;
      throw err;
    }
  }

  /**
   * One unary call, trying each endpoint (starting with the last good one) until one answers.
   * Connection failures, timeouts and UNAVAILABLE answers move on to the next endpoint; other
   * etcd errors are thrown at once.
   */
  async call(operation: string, path: string, body: Json, options: { readonly timeoutMs?: number } = {}): Promise<Json> {
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    if (this.#closed) throw new EtcdError(operation, `etcd ${operation}: client is closed`);
    const failures: string[] = [];
    let lastCause: unknown;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const index = (this.#current + i) % this.#endpoints.length;
      const endpoint = this.#endpoints[index]!;
      let status: number;
      let text: string;
      try {
        const res = await this.#agent.request({
          origin: endpoint,
          path,
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
          signal: AbortSignal.timeout(timeoutMs),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        lastCause = err;
        failures.push(`${endpoint}: ${describe(err)}`);
        continue;
      }
      let parsed: Json;
      try {
        parsed = JSON.parse(text) as Json;
      } catch (err) {
        lastCause = err;
        failures.push(`${endpoint}: HTTP ${status}, not JSON: ${text.slice(0, 200)}`);
        continue;
      }
      if (status >= 200 && status < 300) {
        this.#current = index;
        this.reportHealth();
        return parsed;
      }
      const grpcCode = typeof parsed['code'] === 'number' ? parsed['code'] : undefined;
      const message = String(parsed['message'] ?? parsed['error'] ?? text.slice(0, 200));
      const error = new EtcdError(operation, `etcd ${endpoint} ${operation}: ${message} (HTTP ${status}, gRPC code ${grpcCode ?? '?'})`, { grpcCode });
      if (grpcCode !== undefined && RETRYABLE_GRPC.has(grpcCode)) {
        lastCause = error;
        failures.push(`${endpoint}: ${message}`);
        continue;
      }
      this.reportHealth();
      throw error;
    }
    const message = `etcd ${operation} failed on every endpoint: ${failures.join('; ')}`;
    this.reportHealth(message);
    throw new EtcdError(operation, message, { cause: lastCause });
  }

  /**
   * Opens a streaming request on the first endpoint that answers with 200 (used by watches);
   * the body has no timeout. Failing endpoints are skipped as in {@link call}.
   */
  async stream(operation: string, path: string, body: Json, signal: AbortSignal): Promise<{ endpoint: string; body: AsyncIterable<Buffer> }> {
    const failures: string[] = [];
    let lastCause: unknown;
    for (let i = 0; i < this.#endpoints.length; i++) {
      const index = (this.#current + i) % this.#endpoints.length;
      const endpoint = this.#endpoints[index]!;
      // Its own abort: the caller's, or {@link dropStreams} when the endpoint stops answering.
      const own = new AbortController();
      const follow = (): void => own.abort(signal.reason);
      signal.addEventListener('abort', follow, { once: true });
      try {
        const res = await this.#agent.request({
          origin: endpoint,
          path,
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
          signal: own.signal,
          headersTimeout: this.#timeoutMs,
          bodyTimeout: 0,
        });
        if (res.statusCode !== 200) {
          signal.removeEventListener('abort', follow);
          const text = await res.body.text();
          failures.push(`${endpoint}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
          continue;
        }
        this.#current = index;
        return { endpoint, body: this.#tracked(endpoint, own, res.body, () => signal.removeEventListener('abort', follow)) };
      } catch (err) {
        signal.removeEventListener('abort', follow);
        if (signal.aborted) throw err;
        lastCause = err;
        failures.push(`${endpoint}: ${describe(err)}`);
      }
    }
    throw new EtcdError(operation, `etcd ${operation} failed on every endpoint: ${failures.join('; ')}`, { cause: lastCause });
  }

  /** `body`, counted among the open streams of `endpoint` until it ends. */
  async *#tracked(endpoint: string, abort: AbortController, body: AsyncIterable<Buffer>, done: () => void): AsyncIterable<Buffer> {
    const set = this.#streams.get(endpoint) ?? new Set<AbortController>();
    this.#streams.set(endpoint, set);
    set.add(abort);
    try {
      for await (const chunk of body) {
        if (abort.signal.aborted) break;
        yield chunk;
      }
      // A dropped stream fails (its watch resumes elsewhere), whether undici noticed the abort or not.
      if (abort.signal.aborted) throw abort.signal.reason;
    } finally {
      set.delete(abort);
      if (set.size === 0 && this.#streams.get(endpoint) === set) this.#streams.delete(endpoint);
      done();
    }
  }

  /** The endpoints that hold open streams (watches). */
  streamEndpoints(): string[] {
    return [...this.#streams.keys()];
  }

  /** Ends the streams on `endpoint` (their watches resume elsewhere): a frozen member sends nothing, and its watches would wait forever. */
  dropStreams(endpoint: string, reason: string): void {
    this.avoid(endpoint);
    for (const abort of this.#streams.get(endpoint) ?? []) abort.abort(new EtcdError('watch', reason));
  }

  /** Asks `endpoint` alone (no failover) for its status within `timeoutMs`: undefined when it answered with a leader, else what is wrong. */
  async endpointProblem(endpoint: string, timeoutMs: number): Promise<string | undefined> {
    try {
      const res = await this.#agent.request({
        origin: endpoint,
        path: '/v3/maintenance/status',
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) return `HTTP ${res.statusCode} ${text.slice(0, 200)}`;
      const leader = (JSON.parse(text) as Json)['leader'];
      return leader === undefined || leader === '0' ? 'it has no leader' : undefined;
    } catch (err) {
      return describe(err);
    }
  }

  /** Moves off `endpoint` for the next call, e.g. after its watch stream broke. */
  avoid(endpoint: string): void {
    if (this.#endpoints[this.#current] === endpoint) this.#current = (this.#current + 1) % this.#endpoints.length;
  }

  /** Closes every connection (open watch streams are destroyed). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#agent.destroy();
  }
}
