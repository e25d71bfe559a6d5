import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReplayableBody } from './body.ts';

/** An async source the test feeds chunk by chunk. */
function feed(): { source: AsyncIterable<Uint8Array>; push(s: string): void; end(): void } {
  const queue: (string | null)[] = [];
  let wake: (() => void) | undefined;
  return {
    source: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length === 0) await new Promise<void>((r) => (wake = r));
          const c = queue.shift() as string | null;
          if (c === null) return;
          yield Buffer.from(c);
        }
      },
    },
    push(s) {
      queue.push(s);
      wake?.();
    },
    end() {
      queue.push(null);
      wake?.();
    },
  };
}

async function text(it: AsyncIterable<Uint8Array>): Promise<string> {
  let s = '';
  for await (const c of it) s += Buffer.from(c).toString();
  return s;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ReplayableBody: deferUntilSent and readAhead', () => {
  test('the listener is told when an attempt has read the source to its end; not again, not after', async () => {
    const f = feed();
    const b = new ReplayableBody(f.source, 100);
    let told = 0;
    assert.equal(b.deferUntilSent({ bodySent: () => told++ }), true);
    const sent = text(b.attempt());
    f.push('ab');
    await tick();
    assert.equal(told, 0);
    f.end();
    assert.equal(await sent, 'ab');
    assert.equal(told, 1);
    assert.equal(b.deferUntilSent({ bodySent: () => told++ }), false, 'already sent: the caller starts its timer itself');
  });

  test('read ahead under the cap: the end is known before any attempt; the attempt and a retry send it all', async () => {
    const f = feed();
    const b = new ReplayableBody(f.source, 100);
    let told = 0;
    b.deferUntilSent({ bodySent: () => told++ });
    b.deferUntilSent({ bodySent: () => told++ });
    b.deferUntilSent({ bodySent: () => told++ });
    b.readAhead();
    f.push('ab');
    f.push('cd');
    f.end();
    await tick();
    assert.equal(told, 3, 'every listener told (two slots and a list)');
    assert.equal(b.replayable, true);
    assert.equal(await text(b.attempt()), 'abcd');
    assert.equal(await text(b.attempt()), 'abcd');
    assert.equal((await b.whenComplete())?.toString(), 'abcd');
  });

  test('read ahead past the cap: not replayable; the attempt sends what was read, then the rest, in order', async () => {
    const f = feed();
    const b = new ReplayableBody(f.source, 3);
    let told = 0;
    b.deferUntilSent({ bodySent: () => told++ });
    b.readAhead();
    f.push('ab');
    f.push('cd');
    await tick();
    assert.equal(b.replayable, false);
    assert.equal(await b.whenComplete(), undefined);
    const sent = text(b.attempt());
    f.push('ef');
    f.end();
    assert.equal(await sent, 'abcdef');
    assert.equal(told, 1);
  });

  test('read ahead while an attempt reads: every chunk once, in order', async () => {
    const f = feed();
    const b = new ReplayableBody(f.source, 1000);
    const sent = text(b.attempt());
    b.readAhead();
    for (let i = 0; i < 20; i++) {
      f.push(String.fromCharCode(97 + i));
      if (i % 3 === 0) await tick();
    }
    f.end();
    assert.equal(await sent, 'abcdefghijklmnopqrst');
    assert.equal(await text(b.attempt()), 'abcdefghijklmnopqrst');
  });
});
