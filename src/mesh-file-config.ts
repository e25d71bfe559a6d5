/**
 * Embedded mode's config files for a {@link Mesh}: loading them (with the caches that let a
 * one-resource change cost one resource's work), watching the paths, and reloading one at a time
 * once a burst of file events has settled.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import type { MeshLogger, MeshOptions, WatchStateEvent } from './mesh-options.ts';
import { type ConfigSource, type LoadedConfig, loadConfig } from './config/load-config.ts';
import { type ConfigWatcher, watchConfigPaths } from './config/watch.ts';
import { ParseCache } from './config/load.ts';
import { ValidationCache } from './config/validate/index.ts';
import { type ReloadAttempt, Reloader } from './config/reloader.ts';
import type { ConfigIssue } from './config/issues.ts';
import { validationWarnings } from './config/findings.ts';
import { ConfigError } from './core/errors.ts';
import { CompileCache } from './routing/compile-cache.ts';
import { compileSnapshotAsync, type Snapshot } from './routing/compile.ts';
import { networkSettingsWith } from './mesh-gateway-names.ts';
import { compileWithGatewayNames, type GatewayNames } from './outbound/gateway-names.ts';

/** What the file config needs from its mesh. */
export interface FileConfigHost {
  readonly options: MeshOptions;
  readonly logger: () => MeshLogger;
  /** The snapshot in use (a reload that compiles to the same version changes nothing). */
  readonly snapshot: () => Snapshot;
  readonly install: (snapshot: Snapshot) => void;
  readonly applied: (version: string, findings: readonly ConfigIssue[], warnings: readonly ConfigIssue[]) => void;
  readonly rejected: (issues: readonly ConfigIssue[], error: ConfigError) => void;
  readonly watchState: (e: WatchStateEvent) => void;
}

/** @internal the workload a mesh compiles its snapshots for. */
export function workloadOf(o: MeshOptions): { service: string; namespace: string; labels: Readonly<Record<string, string>> } {
  return { service: o.service, namespace: o.namespace ?? 'default', labels: o.labels ?? {} };
}

/**
 * @internal What one load of an embedded mesh's config reuses from the one before: files parsed
 * while their text is the same, documents validated while they are, and the services, clusters
 * and virtual hosts whose inputs are all unchanged.
 */
export class FileConfigCaches {
  readonly parse = new ParseCache();
  readonly validation = new ValidationCache();
  readonly compile = new CompileCache();
  /** The mesh's east-west gateway host names (resolved before a compile that uses them is installed). */
  readonly gatewayNames: GatewayNames | undefined;
  /** Compiles the config in use again (a gateway host name's addresses changed). */
  current: (() => Promise<Snapshot>) | undefined;

  constructor(gatewayNames?: GatewayNames) {
    this.gatewayNames = gatewayNames;
  }
}

/**
 * @internal Loads and checks the config of `o` and, when it is valid, compiles the snapshot —
 * `createMesh`'s first load and every reload, through the same caches (so the first change after
 * start-up already costs only what changed).
 */
export async function loadFileConfig(o: MeshOptions, caches: FileConfigCaches): Promise<{ loaded: LoadedConfig; compile(): Promise<Snapshot> }> {
  const loaded = await loadConfig(o.config as ConfigSource, { defaultNamespace: o.namespace ?? 'default', analysis: o.analysis, parseCache: caches.parse, validationCache: caches.validation, registryCache: caches.compile.registry });
  const networks = networkSettingsWith(o, caches.gatewayNames);
  const compile = () => compileWithGatewayNames(() => compileSnapshotAsync(loaded.resources, workloadOf(o), { cache: caches.compile, rootNamespace: o.rootNamespace, networks, defaultHttpRetryPolicy: o.defaultHttpRetryPolicy }), caches.gatewayNames);
  return { loaded, compile };
}

/** @internal Loads, watches and reloads an embedded mesh's config paths. */
export class FileConfig {
  readonly #host: FileConfigHost;
  #watcher: ConfigWatcher | undefined;
  readonly #caches: FileConfigCaches;
  /** Reloads once a burst of file events has settled, and files written in place are quiet. */
  readonly #reloader: Reloader;
  /** Reloads run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  /** `caches`: those of the first load (createMesh's), so the first reload reuses its work. */
  constructor(host: FileConfigHost, caches = new FileConfigCaches()) {
    this.#host = host;
    this.#caches = caches;
    // A gateway host name's new addresses: the config in use compiled again and installed (its version is the same).
    if (caches.gatewayNames !== undefined) caches.gatewayNames.onChange = () => void this.#serial(() => this.#recompile());
    this.#reloader = new Reloader({
      debounceMs: 100,
      maxDebounceMs: 1000,
      reload: (attempt) => this.#serial(() => this.#load(attempt)).then(() => undefined),
      onUnsettled: (files, ms) => host.logger().warn(`meshlet: ${files.join(', ')} ha${files.length === 1 ? 's' : 've'} been written for ${Math.round(ms / 1000)} s without a pause; the change is applied once ${files.length === 1 ? 'it is' : 'they are'} quiet for a second`),
      onError: (e) => host.logger().warn(`meshlet: reloading config failed: ${String(e)}`),
    });
  }

  /** Applies the files' resources now (serialised with the watcher's reloads). */
  reload(): Promise<boolean> {
    return this.#serial(() => this.#load(undefined));
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Loads and applies the config; a watcher's `attempt` that went out of date while reading is dropped (another follows). */
  async #load(attempt: ReloadAttempt | undefined): Promise<boolean> {
    if (attempt !== undefined && (this.#watcher?.lost.length ?? 0) > 0) return false; // reported as lost; the last good config serves
    const o = this.#host.options;
    const { loaded, compile } = await loadFileConfig(o, this.#caches);
    if (attempt !== undefined && !(await attempt.current())) return false;
    if (!loaded.ok) {
      const error = new ConfigError(loaded.issues.all);
      this.#host.logger().warn(`meshlet: new config rejected, the last good config keeps serving.\n${error.message}`);
      this.#host.rejected(loaded.issues.all, error);
      return false;
    }
    const snapshot = await compile();
    this.#caches.current = compile;
    if (snapshot.version === this.#host.snapshot().version) return true;
    this.#host.install(snapshot);
    this.#host.applied(snapshot.version, loaded.findings, validationWarnings(loaded.issues.all, loaded.findings));
    return true;
  }

  async #recompile(): Promise<void> {
    const compile = this.#caches.current;
    if (compile === undefined || this.#closed) return;
    try {
      const snapshot = await compile();
      if (!this.#closed) this.#host.install(snapshot);
    } catch (e) {
      this.#host.logger().warn(`meshlet: compiling config ${this.#host.snapshot().version} again for new east-west gateway addresses failed: ${String(e)}`);
    }
  }

  /** Watches the config paths (unless `watch: false`); a missing path rejects. */
  async start(): Promise<void> {
    const src = this.#host.options.config;
    if (this.#host.options.watch === false || src === undefined) return;
    const paths = typeof src === 'string' ? [src] : Array.isArray(src) && src.every((s) => typeof s === 'string') ? (src as string[]) : [];
    for (const p of paths) await stat(p); // a missing path fails createMesh here, not silently later
    if (paths.length === 0) return;
    const log = this.#host.logger;
    this.#watcher = watchConfigPaths(paths, {
      onEvent: (e) => this.#reloader.event(e),
      onError: (e) => log().warn(`meshlet: ${e.message}`),
      onLost: (path, message) => {
        log().warn(`meshlet: lost the watch on config ${path}: ${message}; config ${this.#host.snapshot().version} keeps serving`);
        this.#host.watchState({ path, watching: false, message });
      },
      onRestored: (path, message) => {
        log().info?.(`meshlet: config ${path} is watched again: ${message}`);
        this.#host.watchState({ path, watching: true, message });
      },
    });
  }

  /** Stops watching; a reload in progress finishes first. */
  async close(): Promise<void> {
    this.#closed = true;
    void this.#caches.gatewayNames?.close();
    this.#watcher?.close();
    await this.#reloader.close();
  }
}
