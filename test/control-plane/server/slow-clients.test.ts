/**
 * Clients that send slowly (slowloris): a request refused before its body was read (no token, a
 * body over the limit) closes its connection instead of draining the body at the sender's pace,
 * and a request's headers and body have a bounded time to arrive (Node's requestTimeout, which
 * the server had turned off).
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../../../src/control-plane-server/http.ts';
import { api, startTestServer, type TestServer } from './helpers.ts';

/** Sends `head` (a request that announces a body it never finishes) and resolves with what came back once the server ended the connection. */
function refusedMidBody(url: string, head: string): Promise<{ text: string; socket: Socket }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    // Only the failure path waits for this: a server that keeps the connection.
    socket.setTimeout(10_000);
    socket.on('data', (d: string) => {
      text += d;
      // The answer came: the rest of the body is still coming, a byte at a time.
      if (text.includes('\r\n\r\n') && !socket.destroyed) socket.write('x');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ text, socket }));
    socket.on('timeout', () => reject(new Error(`the server kept the connection; it answered: ${text.slice(0, 200)}`)));
    socket.write(head);
    socket.write('{"csr":');
  });
}

describe('slow clients', { timeout: 60_000 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(() => s.close());

  it('a request refused for its token before its body was read is answered 401 and its connection closed', async () => {
    const { text } = await refusedMidBody(s.url, 'POST /v1/certificates HTTP/1.1\r\nHost: cp\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 401 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
  });

  it('a body declared over the limit is answered 413 and its connection closed', async () => {
    const token = await s.cp.mintToken({ service: 'reviews', namespace: 'default' });
    const { text } = await refusedMidBody(s.url, `POST /v1/certificates HTTP/1.1\r\nHost: cp\r\nauthorization: Bearer ${token}\r\ncontent-length: 100000000\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
  });

  it('the API server bounds how long headers and a request take to arrive (a watch stream is not bounded by it)', async () => {
    let server: Server | undefined;
    const seen = (m: unknown) => {
      server ??= (m as { server: Server }).server;
    };
    subscribe('http.server.request.start', seen);
    try {
      assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
    } finally {
      unsubscribe('http.server.request.start', seen);
    }
    assert.ok(server !== undefined);
    assert.equal(server.headersTimeout, HEADERS_TIMEOUT_MS);
    assert.equal(server.requestTimeout, REQUEST_TIMEOUT_MS);
    assert.ok(REQUEST_TIMEOUT_MS > 0 && REQUEST_TIMEOUT_MS <= 120_000);
  });
});
