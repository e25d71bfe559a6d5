/**
 * The setup `envoyOtelAls` access-log tests share: a collector and a ratings upstream for the test
 * file (or suite), and a mesh of `reviews` that logs to the collector, as Istio's task
 * "OpenTelemetry access logging" sets it up (MeshConfig `extensionProviders: [{name: otel,
 * envoyOtelAls: {service, port}}]`, a Telemetry naming `otel`), on a ManualClock at {@link T0}.
 */
import { after, before } from 'node:test';
import { createMesh, ManualClock, type Mesh, type MeshOptions } from '../../src/index.ts';
import { capture, T0, telemetry, until } from './access-log.ts';
import { type Collector, collectorAndRatings, OTEL_HOST, startCollector } from './otel-collector.ts';
import { type Behaviour, startUpstream, type Upstream } from './upstreams.ts';

/** The collector and ratings of a file or suite, started in its `before` hook and closed in its `after` hook. */
export interface OtelAlsFixture {
  readonly collector: Collector;
  /** The ratings upstream (`ratings.default.svc.cluster.local:9080` in the mesh's config). */
  readonly up: Upstream;
}

/** Starts the collector and ratings (answering as `ratings` says, else `ratings`) before the tests of the enclosing file or suite; closes them after. */
export function otelAlsFixture(ratings: Behaviour = (_req, res) => void res.end('ratings')): OtelAlsFixture {
  let collector: Collector | undefined;
  let up: Upstream | undefined;
  before(async () => {
    collector = await startCollector();
    up = await startUpstream('ratings', ratings);
  });
  after(async () => {
    collector?.close();
    await up?.close();
  });
  return {
    get collector() {
      return collector as Collector;
    },
    get up() {
      return up as Upstream;
    },
  };
}

/** A mesh that logs to the collector, its clock and what its logger got. */
export interface OtelAlsMesh {
  readonly mesh: Mesh;
  readonly clock: ManualClock;
  readonly log: ReturnType<typeof capture>;
}

export interface OtelAlsMeshOptions {
  /** Merged into the `otel` provider's `envoyOtelAls` (`logFormat`, another `service`). */
  readonly envoyOtelAls?: Record<string, unknown>;
  /** Other createMesh options (`telemetry`, …). */
  readonly mesh?: Partial<MeshOptions>;
  /** The services in the config instead of the collector's and ratings' ServiceEntries. */
  readonly services?: readonly object[];
}

/**
 * Creates `reviews` (namespace `default`) with the `otel` provider (the collector's host, port
 * 4317) and a Telemetry `otel` with `spec` (`{ accessLogging: [{ providers: [{ name: 'otel' }] }] }`
 * when not given), the collector and ratings (on `ratingsPort`) as ServiceEntries; the log is
 * captured. The caller closes the mesh.
 */
export async function otelAlsMesh(fixture: OtelAlsFixture, spec: Record<string, unknown> = { accessLogging: [{ providers: [{ name: 'otel' }] }] }, o: OtelAlsMeshOptions = {}): Promise<OtelAlsMesh> {
  const clock = new ManualClock(T0);
  const log = capture();
  const mesh = await createMesh({
    service: 'reviews',
    namespace: 'default',
    clock,
    logger: log.logger,
    extensionProviders: [{ name: 'otel', envoyOtelAls: { service: OTEL_HOST, port: 4317, ...o.envoyOtelAls } }],
    ...o.mesh,
    config: [...(o.services ?? collectorAndRatings(fixture.collector.port, fixture.up.port)), telemetry('otel', spec)] as never,
  });
  return { mesh, clock, log };
}

/** Moves the clock past the flush interval (1 s) and waits for `records` records at the collector. */
export async function flush(s: OtelAlsMesh, collector: Collector, records: number): Promise<void> {
  s.clock.advance(1000);
  await until(() => collector.records().length >= records, `${records} record(s) at the collector`);
}
