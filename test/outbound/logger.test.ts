/**
 * createMesh's logger: anything pino-, winston- or console-shaped. Methods are called as methods
 * (pino's need their `this`); `warn` is required, `info` is used when present.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createMesh, isMeshletError } from '../../src/index.ts';
import { serviceEntry, virtualService } from '../helpers/upstreams.ts';

/** A logger like pino's: methods that read private state through `this`. */
class ThisBoundLogger {
  readonly #lines: string[] = [];
  get lines(): readonly string[] {
    return this.#lines;
  }
  warn(message: string): void {
    this.#lines.push(`warn ${message}`);
  }
  info(message: string): void {
    this.#lines.push(`info ${message}`);
  }
}

test('a pino-shaped logger gets findings (warn) and config changes (info), called as methods', async () => {
  const logger = new ThisBoundLogger();
  const mesh = await createMesh({
    service: 'client',
    logger,
    config: [serviceEntry('svc', 'svc.default.svc.cluster.local', 80, [{ port: 1 }]), virtualService('svc', ['svc'], [{ route: [{ destination: { host: 'svc', subset: 'nope' } }] }])],
  });
  try {
    await new Promise((r) => setImmediate(r));
    assert.ok(logger.lines.some((l) => /^warn meshlet: config \w+ \(file\) applied with 1 analysis finding/.test(l) && /IST0101/.test(l)), logger.lines.join('\n'));
    assert.ok(logger.lines.some((l) => /^info meshlet: config \w+ from file in use/.test(l)), logger.lines.join('\n'));
  } finally {
    await mesh.close();
  }
});

test('a logger without warn is refused at createMesh with a message naming the option', async () => {
  for (const logger of [{}, null, { info: () => undefined }]) {
    await assert.rejects(createMesh({ service: 'c', config: [], logger: logger as never }), (e: unknown) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && /`logger` must have a warn\(message\) method/.test((e as Error).message));
  }
});

test('validation warnings of files in use are logged once each: what meshlet accepts but does not do (a TCP route) is not ignored without a word', async () => {
  const logger = new ThisBoundLogger();
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-warnings-'));
  const write = (tcpHost: string) =>
    writeFile(
      join(dir, 'mesh.yaml'),
      `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec: {hosts: [db.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  tcp:
  - route: [{destination: {host: ${tcpHost}}}]
`,
    );
  await write('db.example.com');
  const mesh = await createMesh({ service: 'client', logger, config: dir, watch: false });
  try {
    await new Promise((r) => setImmediate(r));
    const warned = () => logger.lines.filter((l) => /^warn meshlet: config \w+ \(file\) applied with 1 validation warning/.test(l));
    assert.equal(warned().length, 1, logger.lines.join('\n'));
    assert.match(warned()[0] as string, /not supported by meshlet: spec\.tcp/);
    assert.match(warned()[0] as string, /mesh\.yaml/);
    // The same warning in a changed config is not logged again; a new one is.
    await write('other.example.com');
    assert.equal(await mesh.reload(), true);
    assert.equal(warned().length, 1, logger.lines.join('\n'));
    await writeFile(join(dir, 'more.yaml'), 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: db, namespace: default}\nspec:\n  host: db.example.com\n  trafficPolicy: {proxyProtocol: {version: V2}}\n');
    assert.equal(await mesh.reload(), true);
    assert.equal(warned().length, 2, logger.lines.join('\n'));
    assert.match(warned()[1] as string, /proxyProtocol/);
    assert.doesNotMatch(warned()[1] as string, /spec\.tcp/);
  } finally {
    await mesh.close();
    await rm(dir, { recursive: true, force: true });
  }
});
