import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FailureKind } from '../../core/outcome.ts';
import { failureKindOf } from './classify.ts';

describe('failureKindOf: what a status grpc-js made up was (grpc-js 1.14 texts)', () => {
  const at = '(2026-12-03T10:07:23.262Z)';
  const rows: [code: number, details: string, kind: FailureKind][] = [
    // The TCP connect failed: grpc-js reports the Error ("Error: …").
    [14, 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ', 'connect-failure'],
    [14, 'No connection established. Last error: Error: connect ECONNRESET 127.0.0.1:36147. Resolution note: ', 'connect-failure'],
    [14, 'No connection established. Last error: Error: Socket closed. Resolution note: ', 'connect-failure'],
    // The TLS handshake failed (an Error too).
    [14, 'No connection established. Last error: Error: Client network socket disconnected before secure TLS connection was established. Resolution note: ', 'connect-failure'],
    // A TLS 1.3 alert after the client's handshake: a TLS failure, not a close.
    [14, `No connection established. Last error: error:0A00045C:SSL routines::tlsv13 alert certificate required ${at}. Resolution note: `, 'connect-failure'],
    // Made (TCP, TLS), then closed or reset before the server's HTTP/2 settings: connection termination.
    [14, `No connection established. Last error: Failed to connect ${at}. Resolution note: `, 'reset'],
    [14, 'No connection established. Last error: Connection closed before starting HTTP/2 handshake. Resolution note: ', 'reset'],
    [14, `No connection established. Last error: read ECONNRESET ${at}. Resolution note: `, 'reset'],
    [14, `No connection established. Last error: write EPIPE ${at}. Resolution note: `, 'reset'],
    // The words elsewhere do not count.
    [14, `No connection established. Last error: Error: Failed to connect ${at}. Resolution note: `, 'connect-failure'],
    [14, 'No connection established', 'connect-failure'],
    [13, 'Failed to connect', 'reset'],
    [13, 'Stream refused by server', 'refused-stream'],
    [13, 'Received RST_STREAM with code 2 triggered by internal client error: Protocol error', 'reset'],
    // The server reset the stream (RST_STREAM): Envoy's remote reset.
    [13, 'Received RST_STREAM with code 2 (Internal server error)', 'remote-reset'],
    [13, 'Received RST_STREAM with code 11', 'remote-reset'],
    [1, 'Call cancelled', 'remote-reset'],
    [8, 'Bandwidth exhausted or memory limit exceeded', 'remote-reset'],
    [7, 'Protocol not secure enough', 'remote-reset'],
    // A stream the server ended without a status is not a reset.
    [13, 'Received RST_STREAM with code 0 (Call ended without gRPC status)', 'reset'],
    // The connection broke under the stream: connection termination.
    [14, 'Connection dropped', 'reset'],
    [14, 'read ECONNRESET', 'reset'],
  ];
  for (const [code, details, kind] of rows) {
    it(`${code} ${JSON.stringify(details.slice(0, 90))} → ${kind}`, () => {
      assert.equal(failureKindOf(code, details), kind);
    });
  }
});
