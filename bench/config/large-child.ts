/**
 * One measurement of bench/config/large.ts, in its own process, against the meshlet sources at
 * `--root` (this checkout, or a baseline exported by the orchestrator), so old and new code run
 * side by side in one bench run. Only entry points that both have are used: createMesh,
 * mesh.reload, startControlPlane and FileConfigStore (reload, apply).
 *
 *   node bench/config/large-child.ts --root DIR --scenario embedded|store|client --size N --changes K --warmup W
 *
 * Prints one JSON line: for each measured step, the longest event-loop block seen by a 1 ms timer
 * probe while the step ran (wall time, and this thread's CPU time in it), the sums of all blocks
 * over 3 ms, and the step's wall time.
 *
 * The first W changes of each kind warm the code up and are reported as `warmup`.
 *
 * Scenarios:
 *   embedded  createMesh({ config: dir }) with N resources in files of 100; then W + K times: one
 *             VirtualService in one file is rewritten (temp file + rename) and mesh.reload() runs.
 *   store     the control plane's FileConfigStore over the same directory: the first load, then W + K
 *             one-file reloads and W + K one-resource `apply`s (what `meshlet apply` does).
 *   client    a real control plane (startControlPlane, in a worker thread: its own event loop) and
 *             a mesh in this thread connected to it: the first push of N resources (createMesh
 *             until it resolved), then W + K one-resource file changes until the mesh emitted `config`.
 *   client-work  the mesh's part of a push without the network: the config event's text parsed,
 *             checked and compiled as the watch stream does it (a full push, then W + K pushes with
 *             one resource changed). Works at sizes the control plane cannot push (see large.ts).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** Resources per file in the generated config directory. */
const PER_FILE = 100;
const quiet = { warn() {}, info() {}, error() {}, debug() {} };

// ---------------------------------------------------------------- config

/**
 * Service `i`: a ServiceEntry with two endpoints, a DestinationRule with two subsets, a
 * VirtualService with a header match and a split (about 330 bytes a resource on the wire: 20,000
 * of them stay under the control plane's 8 MiB bound on a stream's unsent data).
 */
function serviceResources(i: number, split = 90): object[] {
  const name = `svc-${i}`;
  const host = `${name}.bench.svc.cluster.local`;
  const metadata = { name, namespace: 'bench' };
  const ip = `10.${(i >> 8) & 255}.${i & 255}`;
  return [
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'ServiceEntry',
      metadata,
      spec: {
        hosts: [host],
        location: 'MESH_INTERNAL',
        resolution: 'STATIC',
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        endpoints: [
          { address: `${ip}.1`, labels: { v: '1' } },
          { address: `${ip}.2`, labels: { v: '2' } },
        ],
      },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata,
      spec: { host: name, subsets: [{ name: 'v1', labels: { v: '1' } }, { name: 'v2', labels: { v: '2' } }] },
    },
    {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata,
      spec: {
        hosts: [name],
        http: [
          { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: name, subset: 'v2' } }] },
          {
            route: [
              { destination: { host: name, subset: 'v1' }, weight: split },
              { destination: { host: name, subset: 'v2' }, weight: 100 - split },
            ],
          },
        ],
      },
    },
  ];
}

/** The documents of file `f`: resources f·100 … f·100+99 (service s has resources 3s, 3s+1, 3s+2). */
function fileText(f: number, services: number, changed?: { service: number; split: number }): string {
  const docs: string[] = [];
  for (let r = f * PER_FILE; r < Math.min((f + 1) * PER_FILE, services * 3); r++) {
    const s = Math.floor(r / 3);
    docs.push(JSON.stringify(serviceResources(s, s === changed?.service ? changed.split : 90)[r % 3]));
  }
  return docs.join('\n---\n');
}

const fileName = (dir: string, f: number): string => join(dir, `part-${String(f).padStart(4, '0')}.yaml`);

/** About N resources (whole services of 3) as JSON documents in files of {@link PER_FILE}. */
function writeConfig(dir: string, n: number): { services: number } {
  const services = Math.ceil(n / 3);
  for (let f = 0; f * PER_FILE < services * 3; f++) writeFileSync(fileName(dir, f), fileText(f, services));
  return { services };
}

/** Rewrites the file that holds service `i` with its VirtualService's split changed (temp file + rename, as editors and kubectl do). */
function changeService(dir: string, services: number, i: number, split: number): void {
  const f = Math.floor((i * 3 + 2) / PER_FILE);
  const file = fileName(dir, f);
  writeFileSync(`${dir}/.next`, fileText(f, services, { service: i, split }));
  renameSync(`${dir}/.next`, file);
}

// ---------------------------------------------------------------- event-loop probe

/**
 * Measures event-loop blocks with a 1 ms interval timer: the longest gap between two ticks
 * (beyond the interval) in wall time, and the CPU time this thread spent in that gap
 * (`process.threadCpuUsage()`: on a loaded machine a wall gap also holds time the process was not
 * running at all; the CPU figure is the block the code itself made, GC pauses included).
 */
class BlockProbe {
  #timer: NodeJS.Timeout | undefined;
  #last = 0;
  #lastCpu = 0;
  max = 0;
  maxCpu = 0;
  total = 0;
  totalCpu = 0;
  start(): void {
    this.max = 0;
    this.maxCpu = 0;
    this.total = 0;
    this.totalCpu = 0;
    this.#last = performance.now();
    this.#lastCpu = cpuMs();
    this.#timer = setInterval(() => this.#tick(), 1);
  }
  #tick(): void {
    const now = performance.now();
    const cpu = cpuMs();
    const block = now - this.#last - 1;
    const blockCpu = cpu - this.#lastCpu;
    if (block > this.max) this.max = block;
    if (blockCpu > this.maxCpu) this.maxCpu = blockCpu;
    if (block > 3) this.total += block;
    if (blockCpu > 3) this.totalCpu += blockCpu;
    this.#last = now;
    this.#lastCpu = cpu;
  }
  /** Stops, counting the block that is still going on (the step may end inside one). */
  stop(): { maxBlockMs: number; blockedMs: number; maxBlockCpuMs: number; blockedCpuMs: number } {
    this.#tick();
    clearInterval(this.#timer);
    return { maxBlockMs: round(this.max), blockedMs: round(this.total), maxBlockCpuMs: round(this.maxCpu), blockedCpuMs: round(this.totalCpu) };
  }
}

function cpuMs(): number {
  const u = process.threadCpuUsage();
  return (u.user + u.system) / 1000;
}

/** Unmeasured warm-up rounds (the first changes run cold code): their steps are named `warmup`. */
let WARMUP = 2;
const stepName = (name: string, k: number): string => (k < WARMUP ? 'warmup' : name);

const round = (x: number): number => Math.round(x * 10) / 10;
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

interface Step {
  readonly step: string;
  readonly maxBlockMs: number;
  readonly blockedMs: number;
  readonly maxBlockCpuMs: number;
  readonly blockedCpuMs: number;
  readonly wallMs: number;
}

async function measure(step: string, fn: () => Promise<unknown>): Promise<Step> {
  await tick(); // let timers and I/O of the previous step settle
  const probe = new BlockProbe();
  probe.start();
  const t0 = performance.now();
  await fn();
  const wallMs = round(performance.now() - t0);
  return { step, ...probe.stop(), wallMs };
}

// ---------------------------------------------------------------- scenarios

async function embedded(root: string, dir: string, n: number, changes: number): Promise<Step[]> {
  const { createMesh } = (await import(pathToFileURL(join(root, 'src/index.ts')).href)) as typeof import('../../src/index.ts');
  const { services } = writeConfig(dir, n);
  const steps: Step[] = [];
  let mesh: Awaited<ReturnType<typeof createMesh>> | undefined;
  steps.push(await measure('load', async () => (mesh = await createMesh({ service: 'client', namespace: 'bench', config: dir, watch: false, logger: quiet }))));
  for (let k = 0; k < changes; k++) {
    const i = Math.floor((services * (k + 0.5)) / changes);
    changeService(dir, services, i, 80 - k);
    steps.push(await measure(stepName('change', k), async () => {
      if ((await mesh!.reload()) !== true) throw new Error('reload refused');
    }));
  }
  await mesh!.close();
  return steps;
}

async function store(root: string, dir: string, n: number, changes: number): Promise<Step[]> {
  const { FileConfigStore } = (await import(pathToFileURL(join(root, 'src/control-plane-server/file-store.ts')).href)) as typeof import('../../src/control-plane-server/file-store.ts');
  const { services } = writeConfig(dir, n);
  const s = new FileConfigStore({ dir, watch: false, logger: quiet });
  const steps: Step[] = [await measure('load', () => s.start())];
  for (let k = 0; k < changes; k++) {
    const i = Math.floor((services * (k + 0.5)) / changes);
    changeService(dir, services, i, 80 - k);
    const before = s.current().version;
    steps.push(await measure(stepName('change', k), () => s.reload()));
    if (s.current().version === before) throw new Error('the reload did not change the version');
  }
  for (let k = 0; k < changes; k++) {
    const vs = { ...(serviceResources(services + k)[2] as Record<string, unknown>) } as { metadata: { name: string } };
    vs.metadata = { ...vs.metadata, name: `applied-${k}` };
    steps.push(await measure(stepName('apply', k), () => s.apply([vs as never], 'bench')));
  }
  await s.close();
  return steps;
}

async function client(root: string, dir: string, n: number, changes: number): Promise<Step[]> {
  const { createMesh } = (await import(pathToFileURL(join(root, 'src/index.ts')).href)) as typeof import('../../src/index.ts');
  const { services } = writeConfig(dir, n);
  const worker = new Worker(new URL(import.meta.url), { workerData: { root, dir } });
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { url?: string; error?: string }) => (m.url !== undefined ? resolve(m.url) : reject(new Error(m.error))));
    worker.once('error', reject);
  });
  const steps: Step[] = [];
  let mesh: Awaited<ReturnType<typeof createMesh>> | undefined;
  steps.push(await measure('push', async () => (mesh = await createMesh({ service: 'client', namespace: 'bench', controlPlane: url, logger: quiet, startupTimeoutMs: 120_000 }))));
  for (let k = 0; k < changes; k++) {
    const i = Math.floor((services * (k + 0.5)) / changes);
    steps.push(await measure(stepName('change', k), () => {
      const applied = new Promise<void>((resolve) => mesh!.once('config', () => resolve()));
      changeService(dir, services, i, 80 - k);
      return applied;
    }));
  }
  await mesh!.close();
  worker.postMessage('close');
  await new Promise((r) => worker.once('exit', r));
  return steps;
}

/** Only writes the config (to look at it); the directory is printed and kept. */
async function write(_root: string, dir: string, n: number): Promise<Step[]> {
  writeConfig(dir, n);
  process.stderr.write(`${dir}\n`);
  return [];
}

/**
 * What a mesh does with a control plane's config event, without the network: the event text (as
 * the control plane sends it: every resource `toWire`d) parsed, checked and compiled as the
 * watch stream does it, once for a full push and then for pushes with one resource changed.
 */
async function clientWork(root: string, dir: string, n: number, changes: number): Promise<Step[]> {
  const imp = async <T>(path: string): Promise<T> => (await import(pathToFileURL(join(root, path)).href)) as T;
  const { loadConfig } = await imp<typeof import('../../src/config/load-config.ts')>('src/config/load-config.ts');
  const { toWire } = await imp<typeof import('../../src/control-plane/protocol.ts')>('src/control-plane/protocol.ts');
  const state = await imp<typeof import('../../src/control-plane/state.ts') & Record<string, unknown>>('src/control-plane/state.ts');
  const { services } = writeConfig(dir, n);
  const check = { defaultNamespace: 'bench', analysis: 'advisory' as const };
  const workload = { service: 'client', namespace: 'bench', labels: {} };
  // The watch stream's own steps: parseEventAsync/checkConfigAsync/compileStateAsync where they exist (sliced), else the synchronous ones.
  const apply = async (text: string, version: string): Promise<void> => {
    const body = (typeof state.parseEventAsync === 'function' ? await state.parseEventAsync(text) : state.parseEvent(text)) as { resources: never[] };
    const checked = typeof state.checkConfigAsync === 'function'
      ? await state.checkConfigAsync(body.resources, `control-plane config ${version}`, check, text)
      : state.checkConfig(body.resources, `control-plane config ${version}`, check, text);
    if (!checked.ok) throw new Error(checked.issues.all.slice(0, 3).join('\n'));
    const good = { ...state.EMPTY_STATE, configVersion: version, resources: checked.value };
    if (typeof state.compileStateAsync === 'function') await state.compileStateAsync(good, workload);
    else state.compileState(good, workload);
  };
  const eventText = async (k: number): Promise<string> => {
    const loaded = await loadConfig(dir, { defaultNamespace: 'bench' });
    return JSON.stringify({ version: `v${k}`, resources: loaded.resources.map(toWire) });
  };
  const steps: Step[] = [];
  const first = await eventText(0);
  steps.push(await measure('push', () => apply(first, 'v0')));
  for (let k = 0; k < changes; k++) {
    const i = Math.floor((services * (k + 0.5)) / changes);
    changeService(dir, services, i, 80 - k);
    const text = await eventText(k + 1);
    steps.push(await measure(stepName('change', k), () => apply(text, `v${k + 1}`)));
  }
  return steps;
}

async function controlPlaneWorker(): Promise<void> {
  const { root, dir } = workerData as { root: string; dir: string };
  try {
    const { startControlPlane } = (await import(pathToFileURL(join(root, 'src/control-plane-server/server.ts')).href)) as typeof import('../../src/control-plane-server/server.ts');
    const dataDir = mkdtempSync(join(tmpdir(), 'meshlet-large-cp-'));
    const cp = await startControlPlane({ configDir: dir, dataDir, host: '127.0.0.1', port: 0, insecure: true, logger: quiet });
    parentPort!.once('message', async () => {
      await cp.close();
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(0);
    });
    parentPort!.postMessage({ url: cp.url });
  } catch (e) {
    parentPort!.postMessage({ error: String(e) });
  }
}

if (!isMainThread) {
  await controlPlaneWorker();
} else {
  const { values } = parseArgs({ options: { root: { type: 'string' }, scenario: { type: 'string' }, size: { type: 'string' }, changes: { type: 'string', default: '5' }, warmup: { type: 'string', default: '2' } } });
  WARMUP = Number(values.warmup);
  const root = values.root ?? new URL('../..', import.meta.url).pathname;
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-large-'));
  mkdirSync(dir, { recursive: true });
  const n = Number(values.size);
  const changes = Number(values.changes) + WARMUP;
  const run = { embedded, store, client, 'client-work': clientWork, write }[values.scenario as 'embedded' | 'store' | 'client' | 'client-work' | 'write'];
  if (run === undefined) throw new Error(`--scenario must be embedded, store, client or client-work, got ${values.scenario}`);
  try {
    const steps = await run(root, dir, n, changes);
    process.stdout.write(`${JSON.stringify({ scenario: values.scenario, size: n, steps })}\n`);
  } finally {
    if (values.scenario !== 'write') rmSync(dir, { recursive: true, force: true });
  }
  process.exit(0);
}
