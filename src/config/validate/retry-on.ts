/**
 * `retryOn` tokens: Envoy retry policies Istio accepts, plus HTTP status codes.
 *
 * @module
 */
import { STATUS_CODES } from 'node:http';

/** Retry policies Istio's validation accepts (reference §2.2). */
export const RETRY_ON_POLICIES: readonly string[] = [
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
];

/** Checks a `retryOn` list; returns a problem or nothing. */
export function checkRetryOn(value: string): string | undefined {
  const problems: string[] = [];
  for (const raw of value.split(',')) {
    const token = raw.trim();
    if (token === '') {
      problems.push('empty item');
      continue;
    }
    if (/^\d+$/.test(token)) {
      if (STATUS_CODES[Number(token)] === undefined) problems.push(`"${token}" is not a known HTTP status code`);
      continue;
    }
    if (!RETRY_ON_POLICIES.includes(token)) problems.push(`"${token}" is not a retry policy`);
  }
  if (problems.length === 0) return undefined;
  return `${problems.join('; ')} (allowed: ${RETRY_ON_POLICIES.join(', ')}, or HTTP status codes)`;
}
