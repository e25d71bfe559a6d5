import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageBody, type MessageSink, type WriteAck } from './body.ts';

/** A sink that writes at once: what an attempt on the wire does with the messages. */
function sink(): MessageSink & { got: Buffer[]; ended: boolean } {
  const s = {
    got: [] as Buffer[],
    ended: false,
    message(m: Buffer, ack: WriteAck) {
      s.got.push(m);
      ack.written();
    },
    end() {
      s.ended = true;
    },
    fail(err: Error) {
      throw err;
    },
  };
  return s;
}

/** The messages of a copy (forCopy's body), as an attempt gets them. */
function messagesOf(copy: unknown): string[] {
  assert.ok(copy instanceof MessageBody);
  const s = sink();
  copy.attach(s);
  assert.equal(s.ended, true);
  return s.got.map(String);
}

describe('MessageBody: the whole request, asked before or after it is complete', () => {
  const rows: [name: string, askBefore: boolean, closeFirst: boolean][] = [
    ['asked before the messages (a mirror at dispatch)', true, false],
    ['asked once complete, no one waited', false, false],
    ['asked once complete and the call ended', false, true],
  ];
  for (const [name, askBefore, closeFirst] of rows) {
    it(name, async () => {
      const body = new MessageBody(1024);
      const early = askBefore ? body.forCopy() : undefined;
      const earlyBytes = askBefore ? body.whenComplete() : undefined;
      const s = sink();
      body.attach(s);
      const acks: number[] = [];
      body.push(Buffer.from('a'), () => acks.push(1));
      body.push(Buffer.from('bc'), () => acks.push(2));
      body.end();
      assert.deepEqual(s.got.map(String), ['a', 'bc']);
      assert.deepEqual(acks, [1, 2]);
      if (closeFirst) body.close();
      assert.deepEqual(messagesOf(await (early ?? body.forCopy())), ['a', 'bc']);
      assert.equal(String(await (earlyBytes ?? body.whenComplete())), 'abc');
      // A retry's attempt gets them again.
      if (!closeFirst) {
        const again = sink();
        body.detach(s);
        body.attach(again);
        assert.deepEqual(again.got.map(String), ['a', 'bc']);
      }
    });
  }
  it('a request past the replay buffer is not copied, asked before or after', async () => {
    const body = new MessageBody(2);
    const early = body.forCopy();
    body.attach(sink());
    body.push(Buffer.from('abc'));
    body.end();
    assert.equal(await early, undefined);
    assert.equal(await body.forCopy(), undefined);
    assert.equal(body.replayable, false);
  });
});
