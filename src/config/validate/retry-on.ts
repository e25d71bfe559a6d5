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

/**
 * The items of a `retryOn` list with spaces around them: istiod's validation splits the list at
 * commas only, so `kubectl apply` refuses `"5xx, reset"` (`" reset" is not a valid retryOn
 * policy`); meshlet trims them, and warns.
 */
export function spacedRetryOnItems(value: string): string[] {
  return value.split(',').filter((item) => item.trim() !== '' && item !== item.trim());
}

/** Checks a `retryOn` list; returns a problem or nothing. */
export function checkRetryOn(value: string): string | undefined {
  // An empty retryOn is unset in Istio's proto: istiod's validation skips it and ConvertPolicy
  // keeps the default conditions.
  if (value === '') return undefined;
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
