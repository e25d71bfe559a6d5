import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FailureKind } from '../../core/outcome.ts';
import { tlsFailureReason } from '../../core/tls-failure.ts';
import { failureKindOf, GrpcCallError } from './classify.ts';

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
    // A name that does not resolve (passthrough to an unknown host): no connection was made.
    [14, 'Name resolution failed for target dns:nosuch.example:9090', 'connect-failure'],
  ];
  for (const [code, details, kind] of rows) {
    it(`${code} ${JSON.stringify(details.slice(0, 90))} → ${kind}`, () => {
      assert.equal(failureKindOf(code, details), kind);
    });
  }
});

describe("a TLS failure in grpc-js's text becomes the error's cause (the caller's error names why)", () => {
  it('the mesh’s own server check (TlsHandshakeError), up to the resolution note', () => {
    const e = new GrpcCallError('connect-failure', 14, "No connection established. Last error: TlsHandshakeError: TLS handshake failed: server identity spiffe://cluster.local/ns/foo/sa/other is not one of the destination's identities [spiffe://cluster.local/ns/foo/sa/echo]. Resolution note: ");
    assert.equal(tlsFailureReason(e), "server identity spiffe://cluster.local/ns/foo/sa/other is not one of the destination's identities [spiffe://cluster.local/ns/foo/sa/echo]");
  });
  it('an alert the server sent', () => {
    const e = new GrpcCallError('reset', 14, 'No connection established. Last error: Error: C0C7:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/ssl/record/rec_layer_s3.c:907:SSL alert number 116');
    assert.match(tlsFailureReason(e) ?? '', /^the server requires a client certificate/);
  });
  it('not a TLS failure: no cause', () => {
    assert.equal(tlsFailureReason(new GrpcCallError('connect-failure', 14, 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1')), undefined);
  });
});
