import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http2';
import { describe, it } from 'node:test';
import type { Metadata } from '@grpc/grpc-js';
import { grpcJs } from './grpc-js.ts';
import { plainMetadata, plainStatus } from './h2-status.ts';

/** The headers as node:http2 hands them over (a null-prototype object). */
function h2(entries: Record<string, string | string[]>): IncomingHttpHeaders {
  return Object.assign(Object.create(null) as IncomingHttpHeaders, entries);
}

/** What grpc-js's path makes of response metadata: fromHttp2Headers, without the compression filter's names. */
function viaGrpcJs(headers: IncomingHttpHeaders): Metadata {
  const md = grpcJs().Metadata.fromHttp2Headers(headers);
  md.remove('grpc-encoding');
  md.remove('grpc-accept-encoding');
  return md;
}

describe('h2-status: a plain head or trailers read without Metadata.fromHttp2Headers', () => {
  it('a head of printable values gives the Metadata grpc-js would (same entries, same order)', () => {
    const headers = h2({ ':status': '200', 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity,deflate,gzip', 'grpc-encoding': 'identity', 'x-b': 'two', 'x-a': 'one, more' });
    const md = plainMetadata(headers, grpcJs());
    assert.ok(md !== undefined);
    assert.ok(md instanceof grpcJs().Metadata);
    assert.deepEqual(md.getMap(), viaGrpcJs(headers).getMap());
    assert.deepEqual(Object.keys(md.toHttp2Headers()), ['content-type', 'x-b', 'x-a']);
    // The entries are the Metadata's own: the caller may add to them.
    md.add('x-a', 'three');
    assert.deepEqual(md.get('x-a'), ['one, more', 'three']);
  });

  it('anything grpc-js would treat otherwise is left to its path', () => {
    const g = grpcJs();
    assert.equal(plainMetadata(h2({ ':status': '200', 'x-bin': 'AAEC' }), g), undefined);
    assert.equal(plainMetadata(h2({ ':status': '200', 'x-trace-bin': 'AAEC' }), g), undefined);
    assert.equal(plainMetadata(h2({ ':status': '200', 'set-cookie': ['a', 'b'] }), g), undefined);
    assert.equal(plainMetadata(h2({ ':status': '200', 'x-bad': 'caf\u00e9' }), g), undefined);
    assert.equal(plainMetadata(h2({ ':status': '200', 'x!bad': 'v' }), g), undefined);
  });

  it('trailers of only grpc-status and grpc-message give the status the Metadata path gives', () => {
    const s = plainStatus(h2({ 'grpc-status': '0', 'grpc-message': 'OK' }), grpcJs());
    assert.ok(s !== undefined);
    assert.equal(s.code, 0);
    assert.equal(s.details, 'OK');
    assert.ok(s.metadata instanceof grpcJs().Metadata);
    assert.deepEqual(s.metadata.getMap(), {});
    assert.equal(plainStatus(h2({ 'grpc-status': '14', 'grpc-message': '50%25 d%C3%A9j%C3%A0' }), grpcJs())?.details, '50% déjà');
    assert.equal(plainStatus(h2({ 'grpc-status': '2', 'grpc-message': '100%' }), grpcJs())?.details, '100%');
    assert.equal(plainStatus(h2({ 'grpc-status': '5' }), grpcJs())?.details, '');
  });

  it('trailers with more than the status, or without one, or with a value grpc-js refuses, are left to the Metadata path', () => {
    const g = grpcJs();
    assert.equal(plainStatus(h2({ 'grpc-status': '0', 'x-trailer': 'v' }), g), undefined);
    assert.equal(plainStatus(h2({ 'grpc-message': 'OK' }), g), undefined);
    assert.equal(plainStatus(h2({ 'grpc-status': '0', 'grpc-message': 'caf\u00e9' }), g), undefined);
    assert.equal(plainStatus(h2({ 'grpc-status': ['0', '1'] }), g), undefined);
    // A trailers-only head (its :status, content-type) carries metadata: the Metadata path.
    assert.equal(plainStatus(h2({ ':status': '200', 'content-type': 'application/grpc', 'grpc-status': '0' }), g), undefined);
  });
});
