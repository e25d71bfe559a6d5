/**
 * A mesh's access logs: Envoy-format lines for the calls the app makes (`meshlet:call:end`,
 * the client side) and the requests its servers answer (`meshlet:inbound:end`, the server
 * side), as the Telemetry resources and MeshConfig settings say (`config.ts`). It subscribes to
 * the observation channels only while a side has a log to write, so a mesh without access logs
 * costs nothing; it handles only its own mesh's messages.
 *
 * @module
 */
import type { AnyResource, Resource } from '../../config/resource.ts';
import { type Clock, epochOf, systemClock } from '../../core/clock.ts';
import { type CallEndMessage, type CallStartMessage, channels, type InboundEndMessage, type WorkloadIdentity } from '../../core/observe.ts';
import { ATTRIBUTE_ROOTS, AttributeView } from '../attributes.ts';
import { type CompiledCel, compileCel } from '../cel.ts';
import { clientRecord, type RequestRecord, serverRecord } from '../record.ts';
import { selectTelemetry } from '../select.ts';
import { type AccessLogOptions, type AccessLogProviderConfig, type ResolvedLog, resolveAccessLogs } from './config.ts';
import { compileJsonFormat, compileTextFormat, type JsonFormatter, type TextFormatter } from './format.ts';
import { type AccessLogLogger, type EntryWriter, Writers } from './writers.ts';

/** What an {@link AccessLogger} needs from its mesh. */
export interface AccessLoggerOptions {
  readonly workload: WorkloadIdentity;
  /** MeshConfig `rootNamespace`. */
  readonly rootNamespace: string;
  /** The mesh's clock: with the system clock, start times are wall-clock times; an injected clock's `now()` is read as ms since the epoch. */
  readonly clock: Clock;
  readonly logger: AccessLogLogger;
  /** MeshConfig `extensionProviders`. */
  readonly providers: readonly AccessLogProviderConfig[];
  /** MeshConfig access-log settings. */
  readonly options: AccessLogOptions;
}

interface CompiledLog {
  readonly provider: string;
  readonly filter: CompiledCel | undefined;
  readonly text: TextFormatter | undefined;
  readonly json: JsonFormatter | undefined;
  readonly writer: EntryWriter;
}

/** Writes one mesh's access logs. */
export class AccessLogger {
  readonly #o: AccessLoggerOptions;
  readonly #writers: Writers;
  readonly #wallNow: () => number;
  #client: readonly CompiledLog[] = [];
  #server: readonly CompiledLog[] = [];
  /** Warnings already given (each is said once). */
  readonly #warned = new Set<string>();
  /** The `call:start` of each call in flight (its headers), for its `call:end`. */
  #starts = new WeakMap<object, CallStartMessage>();
  #subscribedClient = false;
  #subscribedServer = false;

  constructor(o: AccessLoggerOptions) {
    this.#o = o;
    this.#writers = new Writers(o.logger);
    const clock = o.clock;
    const epoch = epochOf(clock);
    this.#wallNow = clock === systemClock ? Date.now : () => epoch + clock.now();
  }

  /** The providers that write for each side (for tests and diagnostics). */
  get active(): { readonly client: readonly string[]; readonly server: readonly string[] } {
    return { client: this.#client.map((l) => l.provider), server: this.#server.map((l) => l.provider) };
  }

  /** Applies the config in use: which logs each side writes. */
  install(resources: readonly (AnyResource | Resource)[]): void {
    const w = this.#o.workload;
    const { applied } = selectTelemetry(resources, { namespace: w.namespace, labels: w.labels }, this.#o.rootNamespace);
    this.#client = this.#compile(resolveAccessLogs(applied, this.#o.providers, this.#o.options, 'CLIENT'));
    this.#server = this.#compile(resolveAccessLogs(applied, this.#o.providers, this.#o.options, 'SERVER'));
    this.#subscribe();
  }

  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#o.logger.warn(`meshlet: ${message}`);
  }

  #compile(r: { readonly logs: readonly ResolvedLog[]; readonly findings: readonly string[] }): CompiledLog[] {
    for (const f of r.findings) this.#warn(f);
    const out: CompiledLog[] = [];
    for (const log of r.logs) {
      let filter: CompiledCel | undefined;
      let text: TextFormatter | undefined;
      let json: JsonFormatter | undefined;
      try {
        if (log.filter !== undefined) {
          filter = compileCel(log.filter);
          const unknown = filter.roots.filter((r) => !ATTRIBUTE_ROOTS.includes(r));
          if (unknown.length > 0) this.#warn(`access log "${log.provider}": filter ${JSON.stringify(log.filter)} reads ${unknown.join(', ')}, which no request has (attributes: ${ATTRIBUTE_ROOTS.join(', ')}): it is an error, so false, for every request`);
        }
      } catch (e) {
        // Envoy would refuse the listener; meshlet writes nothing for this provider rather than every request.
        this.#warn(`access log "${log.provider}": filter ${(e as Error).message}; nothing is logged by this provider`);
        continue;
      }
      try {
        if (log.format.kind === 'text') text = compileTextFormat(log.format.text, log.omitEmptyValues);
        else json = compileJsonFormat(log.format.labels, log.omitEmptyValues);
      } catch (e) {
        this.#warn(`access log "${log.provider}": invalid ${log.format.kind === 'text' ? 'text' : 'JSON'} format: ${(e as Error).message}; nothing is logged by this provider`);
        continue;
      }
      out.push({ provider: log.provider, filter, text, json, writer: this.#writers.for(log.path) });
    }
    return out;
  }

  readonly #onCallStart = (m: unknown): void => {
    const s = m as CallStartMessage;
    if (s.workload === this.#o.workload) this.#starts.set(s.call, s);
  };

  readonly #onCallEnd = (m: unknown): void => {
    const e = m as CallEndMessage;
    if (e.workload !== this.#o.workload) return;
    const start = this.#starts.get(e.call);
    if (start !== undefined) this.#starts.delete(e.call);
    this.#emit(this.#client, () => clientRecord(e, { start, startTimeMs: this.#wallNow() - e.durationMs }));
  };

  readonly #onInboundEnd = (m: unknown): void => {
    const e = m as InboundEndMessage;
    if (e.workload !== this.#o.workload) return;
    this.#emit(this.#server, () => serverRecord(e, { startTimeMs: this.#wallNow() - e.durationMs }));
  };

  #emit(logs: readonly CompiledLog[], make: () => RequestRecord): void {
    if (logs.length === 0) return;
    let record: RequestRecord | undefined;
    let view: AttributeView | undefined;
    for (const log of logs) {
      // A subscriber's exception would surface as an uncaught exception in the caller's process.
      try {
        record ??= make();
        if (log.filter !== undefined) {
          view ??= new AttributeView(record);
          if (!log.filter.test(view)) continue;
        }
        log.writer.write(log.text !== undefined ? log.text(record) : (log.json as JsonFormatter)(record));
      } catch (err) {
        this.#warn(`access log "${log.provider}" failed: ${(err as Error).message}`);
      }
    }
  }

  #subscribe(): void {
    const client = this.#client.length > 0;
    if (client !== this.#subscribedClient) {
      if (client) {
        channels.callStart.subscribe(this.#onCallStart);
        channels.callEnd.subscribe(this.#onCallEnd);
      } else {
        channels.callStart.unsubscribe(this.#onCallStart);
        channels.callEnd.unsubscribe(this.#onCallEnd);
        this.#starts = new WeakMap();
      }
      this.#subscribedClient = client;
    }
    const server = this.#server.length > 0;
    if (server !== this.#subscribedServer) {
      if (server) channels.inboundEnd.subscribe(this.#onInboundEnd);
      else channels.inboundEnd.unsubscribe(this.#onInboundEnd);
      this.#subscribedServer = server;
    }
  }

  /** Stops writing and closes the files. */
  async close(): Promise<void> {
    this.#client = [];
    this.#server = [];
    this.#subscribe();
    await this.#writers.close();
  }
}
