import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TlsHandshakeError, tlsFailureReason } from '../../core/tls-failure.ts';
import { classifyGrpcError, GrpcCallError } from './classify.ts';

describe('classifyGrpcError: the kind of a gRPC transport failure', () => {
  it('a GrpcCallError is the kind it was made with (the stream or the connection said which)', () => {
    for (const kind of ['connect-failure', 'reset', 'remote-reset', 'refused-stream', 'protocol'] as const) assert.equal(classifyGrpcError(new GrpcCallError(kind, 14, 'x')), kind);
  });
  it('an abort is a cancellation; anything else a reset', () => {
    assert.equal(classifyGrpcError(Object.assign(new Error('stop'), { name: 'AbortError' })), 'cancelled');
    assert.equal(classifyGrpcError(new Error('what')), 'reset');
  });
});

describe("a connection failure's cause is kept: the caller's error names why", () => {
  it('the TLS connector’s own refusal (TlsHandshakeError)', () => {
    const why = "server identity spiffe://cluster.local/ns/foo/sa/other is not one of the destination's identities [spiffe://cluster.local/ns/foo/sa/echo]";
    const e = new GrpcCallError('connect-failure', 14, `No connection established. Last error: TlsHandshakeError: TLS handshake failed: ${why}`, undefined, new TlsHandshakeError(why));
    assert.equal(tlsFailureReason(e), why);
  });
  it('an alert the server sent', () => {
    const alert = Object.assign(new Error('C0C7:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/ssl/record/rec_layer_s3.c:907:SSL alert number 116'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' });
    const e = new GrpcCallError('connect-failure', 14, `No connection established. Last error: ${alert.message}`, undefined, alert);
    assert.match(tlsFailureReason(e) ?? '', /^the server requires a client certificate/);
  });
  it('not a TLS failure: no TLS reason', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    assert.equal(tlsFailureReason(new GrpcCallError('connect-failure', 14, 'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1', undefined, refused)), undefined);
  });
});
