import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Denial } from '../../inbound/pipeline.ts';
import { denialOutcome } from './observe-inbound.ts';

it("a path-phase denial's %RESPONSE_CODE_DETAILS%: its own details when it has them, else by status", () => {
  // `d.details ?? d.status === 400 ? …` read as `(d.details ?? d.status === 400) ? …`: every denial
  // with details said path_normalization_failed.
  const path = (status: number, details?: string): Denial => ({ status, grpcStatus: 13, body: '', reason: 'r', phase: 'path', ...(details === undefined ? {} : { details }) });
  assert.deepEqual(denialOutcome(path(400, 'http1.invalid_url'), undefined), { flags: '', details: 'http1.invalid_url' });
  assert.deepEqual(denialOutcome(path(400, 'http2.violation.of.messaging.rule'), undefined), { flags: '', details: 'http2.violation.of.messaging.rule' });
  assert.deepEqual(denialOutcome(path(400), undefined), { flags: '', details: 'path_normalization_failed' });
  assert.deepEqual(denialOutcome(path(404), undefined), { flags: '', details: 'absolute_path_rejected' });
});
