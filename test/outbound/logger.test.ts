/**
 * createMesh's logger: anything pino-, winston- or console-shaped. Methods are called as methods
 * (pino's need their `this`); `warn` is required, `info` is used when present.
 */
import assert from 'node:assert/strict';
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
