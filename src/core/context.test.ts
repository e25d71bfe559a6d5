import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, it } from 'node:test';
import { asyncContextFrames, currentContext, currentDeadline, reenterContext, runInContext, runInRestoringScope, runInWholeContext, runInWholeContextLast, withDeadline, withDeadlineAt } from './context.ts';

describe('the mesh context', () => {
  it('is the merged context inside runInContext, in code that runs later too, and the previous one after', async () => {
    let later: Promise<number> | undefined;
    runInContext({ deadline: 50 }, () => {
      assert.equal(currentDeadline(), 50);
      runInContext({ deadline: 80, requestPrincipal: 'iss/alice' }, () => {
        // The sooner deadline wins; what is set is set.
        assert.equal(currentDeadline(), 50);
        assert.equal(currentContext().requestPrincipal, 'iss/alice');
        later = new Promise((ok) => setImmediate(() => ok(currentDeadline())));
      });
      assert.equal(currentContext().requestPrincipal, undefined);
    });
    assert.equal(currentDeadline(), Number.POSITIVE_INFINITY);
    assert.equal(await later, 50);
  });

  it('runInWholeContext enters a whole context as it is outside any, merges it inside one, hands over two arguments, and puts the previous one back', () => {
    const ctx = { deadline: 90, trace: undefined, peer: undefined, requestPrincipal: 'iss/alice', claims: { sub: 'alice' } };
    // Outside any context the merge would be a copy of `ctx`: it is entered as it is.
    assert.equal(runInWholeContext(ctx, (a: number, b: string) => (currentContext() === ctx ? `${a}${b}` : 'copied'), 1, 'x'), '1x');
    assert.equal(currentContext().deadline, Number.POSITIVE_INFINITY);
    // Inside one: merged as runInContext merges (the sooner deadline, what ctx leaves unset inherited).
    const seen = runInContext({ deadline: 40, trace: { traceparent: 't' } }, () =>
      runInWholeContext(ctx, (a: number, b: number) => ({ ...currentContext(), sum: a + b }), 2, 3),
    );
    assert.deepEqual(seen, { deadline: 40, trace: { traceparent: 't' }, peer: undefined, requestPrincipal: 'iss/alice', claims: { sub: 'alice' }, sum: 5 });
    assert.throws(() => runInWholeContext(ctx, () => { throw new Error('boom'); }, 0, 0), /boom/);
    assert.equal(currentContext().requestPrincipal, undefined);
  });

  // Where async context lives in frames (Node 24): elsewhere the scope is none and the tracer uses context.with.
  it('runInWholeContextLast enters in place inside a restoring scope (once), which puts every store back; elsewhere as runInWholeContext', { skip: !asyncContextFrames() }, async () => {
    const ctx = { deadline: 90, trace: undefined, peer: undefined, requestPrincipal: 'iss/alice', claims: undefined };
    const other = new AsyncLocalStorage<string>();
    let later: Promise<string | undefined> | undefined;
    const got = other.run('outer', () =>
      runInRestoringScope(
        (a: number, b: number, c: number) => {
          // What the tracer does in the scope: another store entered in place (its OpenTelemetry context).
          other.enterWith('otel');
          return runInWholeContextLast(
            ctx,
            (x: number, y: number) => {
              assert.equal(currentContext(), ctx);
              assert.equal(other.getStore(), 'otel');
              // Code that runs later (a handler's await) sees both.
              later = new Promise((ok) => setImmediate(() => ok(`${currentContext().requestPrincipal} ${other.getStore()}`)));
              // A second one in the same scope is not the last: it gets a scope of its own.
              const inner = { ...ctx, requestPrincipal: 'iss/bob' };
              assert.equal(runInWholeContextLast(inner, () => currentContext().requestPrincipal, 0, 0), 'iss/bob');
              assert.equal(currentContext(), ctx);
              return x + y;
            },
            a + b,
            c,
          );
        },
        1,
        2,
        3,
      ),
    );
    assert.equal(got, 6);
    // The scope ended: the caller's stores as they were.
    assert.equal(currentContext().requestPrincipal, undefined);
    assert.equal(other.run('x', () => 1), 1);
    assert.equal(await later, 'iss/alice otel');
    // A throw inside: put back all the same.
    assert.throws(() => runInRestoringScope(() => runInWholeContextLast(ctx, () => { throw new Error('boom'); }, 0, 0), 0, 0, 0), /boom/);
    assert.equal(currentContext().requestPrincipal, undefined);
    // Outside a restoring scope: a scope of its own.
    assert.equal(runInWholeContextLast(ctx, () => currentContext().requestPrincipal, 0, 0), 'iss/alice');
    assert.equal(currentContext().requestPrincipal, undefined);
    other.run('outer2', () => {
      runInRestoringScope(() => other.enterWith('inner'), 0, 0, 0);
      assert.equal(other.getStore(), 'outer2');
    });
  });

  it('is put back when the function throws', () => {
    assert.throws(() => runInContext({ deadline: 10 }, () => { throw new Error('boom'); }), /boom/);
    assert.equal(currentDeadline(), Number.POSITIVE_INFINITY);
  });

  it('reenterContext runs with exactly the given context and hands over the arguments', () => {
    const ctx = { deadline: 7, trace: undefined, peer: undefined, requestPrincipal: 'p', claims: undefined };
    assert.equal(reenterContext(ctx, (a: number, b: number) => (currentContext() === ctx ? a + b : -1), 2, 3), 5);
    // Entering the context it already runs in.
    assert.equal(reenterContext(ctx, () => reenterContext(ctx, () => currentContext())), ctx);
    assert.equal(currentContext().deadline, Number.POSITIVE_INFINITY);
  });

  it('leaves the whole async context as it was: another store entered inside does not outlive the call', () => {
    // Entered with one copy of the async context frame instead of AsyncLocalStorage.run's two:
    // the scope puts the caller's frame back as it was (run would put back a copy of the inner one).
    const other = new AsyncLocalStorage<string>();
    other.run('outer', () => {
      runInContext({ deadline: 5 }, () => {
        assert.equal(other.getStore(), 'outer');
        other.enterWith('inner');
      });
      assert.equal(other.getStore(), 'outer');
      assert.equal(currentDeadline(), Number.POSITIVE_INFINITY);
    });
  });
  it('withDeadline and withDeadlineAt refuse a deadline that is not a number (a string from the environment was concatenated: a deadline of now; NaN or undefined was silently none), or a fn that is not a function', () => {
    const bad: [unknown, RegExp][] = [
      ['100', /timeoutMs must be a number of milliseconds \(Infinity for no deadline\), got "100" \(string\)/],
      [undefined, /got undefined \(undefined\)/],
      [Number.NaN, /got NaN \(number\)/],
    ];
    for (const [ms, msg] of bad) {
      assert.throws(() => withDeadline(ms as number, () => 1), (e: Error & { code?: string }) => e.code === 'MESHLET_ERR_INVALID_ARG' && msg.test(e.message));
      assert.throws(() => withDeadlineAt(ms as number, () => 1), (e: Error & { code?: string }) => e.code === 'MESHLET_ERR_INVALID_ARG' && /^withDeadlineAt\(at, fn\): at must be/.test(e.message));
    }
    assert.throws(() => withDeadline(100, 'f' as unknown as () => void), /fn must be a function, got string/);
    // Numbers are taken as they are: Infinity is no deadline, a negative one has passed.
    assert.equal(withDeadline(Number.POSITIVE_INFINITY, () => currentDeadline()), Number.POSITIVE_INFINITY);
    assert.ok(withDeadline(-5, () => currentDeadline()) < performance.now());
  });
});
