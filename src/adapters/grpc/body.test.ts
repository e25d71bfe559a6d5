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

/** A sink that holds each write until told (an attempt whose connection is slow): `ackAll` writes them. */
function slowSink(): MessageSink & { acks: WriteAck[]; ackAll(): void } {
  const s = {
    acks: [] as WriteAck[],
    message(_m: Buffer, ack: WriteAck) {
      s.acks.push(ack);
    },
    end() {},
    fail(err: Error) {
      throw err;
    },
    ackAll() {
      for (const a of s.acks.splice(0)) a.written();
    },
  };
  return s;
}

describe('MessageBody: what a long stream holds', () => {
  it('once the response started (commit), the messages kept for a retry go, and the next ones are not kept', () => {
    const body = new MessageBody(1024 * 1024);
    body.attach(sink());
    for (let i = 0; i < 10; i++) body.push(Buffer.alloc(100));
    assert.equal(body.heldBytes, 1000);
    body.commit();
    assert.equal(body.heldBytes, 0);
    assert.equal(body.replayable, false);
    // A long bidi stream: thousands of messages after its response started, none of them held.
    for (let i = 0; i < 5000; i++) body.push(Buffer.alloc(100));
    assert.equal(body.heldBytes, 0);
    assert.equal(body.messages, 5010);
    assert.equal(body.bytes, 5010 * 105);
  });

  it('commit with a mirror waiting for the whole request keeps the messages for the copy', async () => {
    const body = new MessageBody(1024);
    const copy = body.forCopy();
    body.attach(sink());
    body.push(Buffer.from('a'));
    body.commit();
    body.push(Buffer.from('b'));
    body.end();
    assert.deepEqual(messagesOf(await copy), ['a', 'b']);
  });

  it('writes not yet acknowledged when the request stopped being kept are acknowledged when the call ends (on a later turn)', async () => {
    const body = new MessageBody(4);
    const s = slowSink();
    body.attach(s);
    const acks: string[] = [];
    body.push(Buffer.from('abc'), () => acks.push('abc'));
    // Past the cap: no longer kept for replay, its write still due.
    body.push(Buffer.from('defg'), () => acks.push('defg'));
    assert.equal(body.replayable, false);
    // The attempt ended without writing them (the server answered first): the call's end acknowledges both.
    body.detach(s);
    body.close();
    assert.equal(acks.length, 0);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(acks, ['abc', 'defg']);
    // A write after the call ended: dropped, acknowledged on a later turn too (never inside the write).
    body.push(Buffer.from('late'), () => acks.push('late'));
    assert.deepEqual(acks, ['abc', 'defg']);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(acks, ['abc', 'defg', 'late']);
  });

  it('after commit, only writes still due are held; acknowledged ones are let go as the stream goes on', async () => {
    const body = new MessageBody(1024);
    const s = slowSink();
    body.attach(s);
    const acks: number[] = [];
    const ack = (n: number) => () => acks.push(n);
    body.push(Buffer.alloc(10), ack(10));
    body.commit();
    assert.equal(body.heldBytes, 10);
    s.ackAll();
    body.push(Buffer.alloc(20), ack(20));
    assert.equal(body.heldBytes, 20);
    s.ackAll();
    body.push(Buffer.alloc(30), ack(30));
    body.push(Buffer.alloc(1), ack(1));
    assert.equal(body.heldBytes, 31);
    body.close();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(acks, [10, 20, 30, 1]);
  });
});
