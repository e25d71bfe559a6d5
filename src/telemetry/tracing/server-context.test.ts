import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Context, type ContextManager, context, createContextKey, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { contextWith, spanContextWith, UnsampledSpan, withActive } from './server-context.ts';

const K = createContextKey('test key');
const OTHER = createContextKey('other key');
const PARENT = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true };

describe('the served request context', () => {
  test('reads as trace.setSpan(parent, span).setValue(key, value) would', () => {
    const parent = ROOT_CONTEXT.setValue(OTHER, 'from parent');
    const span = trace.wrapSpanContext(PARENT);
    const mine = spanContextWith(parent, span, K, 'request id');
    const api = trace.setSpan(parent, span).setValue(K, 'request id');
    for (const key of [K, OTHER, createContextKey('OpenTelemetry Context Key SPAN'), createContextKey('absent')]) {
      assert.equal(mine.getValue(key), api.getValue(key), String(key.description));
    }
    assert.equal(trace.getSpan(mine), span);
  });

  test('setValue and deleteValue make new contexts and leave it as it is', () => {
    const c = contextWith(ROOT_CONTEXT.setValue(OTHER, 'o'), K, 'v');
    const set = c.setValue(K, 'w');
    const deleted = c.deleteValue(OTHER);
    assert.equal(set.getValue(K), 'w');
    assert.equal(set.getValue(OTHER), 'o');
    assert.equal(deleted.getValue(OTHER), undefined);
    assert.equal(deleted.getValue(K), 'v');
    assert.equal(c.getValue(K), 'v');
    assert.equal(c.getValue(OTHER), 'o');
  });
});

describe('UnsampledSpan', () => {
  test('continues its parent: trace id and trace state kept, a span id of its own, sampled flag off, the same ids on every read', () => {
    const s = new UnsampledSpan(PARENT);
    const sc = s.spanContext();
    assert.equal(sc.traceId, PARENT.traceId);
    assert.match(sc.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(sc.spanId, PARENT.spanId);
    assert.equal(sc.traceFlags, 0);
    assert.equal(trace.isSpanContextValid(sc), true);
    assert.equal(s.spanContext(), sc);
    assert.equal(s.isRecording(), false);
  });

  test('without a parent: a new valid trace id, different per span', () => {
    const a = new UnsampledSpan(undefined).spanContext();
    const b = new UnsampledSpan(undefined).spanContext();
    assert.match(a.traceId, /^[0-9a-f]{32}$/);
    assert.equal(trace.isSpanContextValid(a), true);
    assert.notEqual(a.traceId, b.traceId);
  });
});

describe('withActive (the served request\'s context made active)', () => {
  /** Runs `fn` with `manager` as the API's global context manager. */
  async function under(manager: ContextManager, fn: () => Promise<void>): Promise<void> {
    context.setGlobalContextManager(manager.enable());
    try {
      await fn();
    } finally {
      context.disable();
    }
  }

  test('as context.with: active inside and in what it starts, the caller\'s context back afterwards (the Node SDK\'s manager, entered in place)', async () => {
    const manager = new AsyncLocalStorageContextManager();
    let attached = 0;
    const attach = manager.attach.bind(manager);
    manager.attach = (c: Context) => {
      attached++;
      return attach(c);
    };
    await under(manager, async () => {
      const outer = ROOT_CONTEXT.setValue(OTHER, 'outer');
      const mine = contextWith(ROOT_CONTEXT, K, 'request');
      await context.with(outer, async () => {
        let later: Promise<unknown> | undefined;
        const got = withActive(mine, () => {
          later = new Promise((resolve) => setImmediate(() => resolve(context.active())));
          return context.active();
        });
        assert.equal(got, mine);
        assert.equal(context.active(), outer);
        assert.equal(await later, mine);
        assert.equal(context.active(), outer);
        assert.throws(() => withActive(mine, () => {
          throw new Error('boom');
        }), /boom/);
        assert.equal(context.active(), outer);
      });
      assert.equal(attached, 2);
    });
  });

  test('a context manager that cannot attach: context.with', async () => {
    const manager = new AsyncLocalStorageContextManager() as ContextManager & { attach?: unknown };
    manager.attach = undefined;
    let withs = 0;
    const w = manager.with.bind(manager);
    manager.with = ((c: Context, fn: () => unknown) => {
      withs++;
      return w(c, fn);
    }) as ContextManager['with'];
    await under(manager, async () => {
      const mine = contextWith(ROOT_CONTEXT, K, 'request');
      assert.equal(withActive(mine, () => context.active()), mine);
      assert.equal(context.active(), ROOT_CONTEXT);
      assert.equal(withs, 1);
    });
  });
});
