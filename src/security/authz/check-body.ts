/**
 * `includeRequestBodyInCheck` for both Envoy ext_authz providers (HTTP and gRPC): the settings'
 * check, reading the request's body before the check (core/request-body.ts), and the answers for
 * a body Envoy would not send on (over `maxRequestBytes` without `allowPartialMessage`: 413) or a
 * caller that went away meanwhile.
 *
 * @module
 */
import { suggest } from '../../core/did-you-mean.ts';
import { type BufferedBody, bufferBody, hasBody } from '../../core/request-body.ts';
import type { AuthzRequest, ExtAuthzResponse } from './types.ts';

/**
 * MeshConfig `EnvoyExternalAuthorizationRequestBody` (`includeRequestBodyInCheck` of both ext_authz providers).
 * @category Server
 */
export interface CheckBodySettings {
  /** The most of the body Envoy holds for the check; required, above 0. */
  readonly maxRequestBytes?: number;
  /** Check with the first `maxRequestBytes` of a longer body instead of refusing it (413). */
  readonly allowPartialMessage?: boolean;
  /** Send the body's bytes as they came (`raw_body`) instead of as UTF-8 text (`body`). */
  readonly packAsBytes?: boolean;
}

/**
 * The fields of `o` that are not in `known`, as problems: `unknown field "timout" (did you mean
 * "timeout"?)`. A misspelt provider field would otherwise be ignored and its default used.
 */
export function unknownFields(o: object, known: readonly string[], prefix = ''): string[] {
  return Object.keys(o)
    .filter((k) => !known.includes(k))
    .map((k) => `unknown field "${prefix}${k}"${suggest(k, known)}`);
}

const BODY_FIELDS = ['maxRequestBytes', 'allowPartialMessage', 'packAsBytes'] as const;

/** What a provider's config gets wrong about the body settings (Envoy refuses `max_request_bytes: 0`). */
export function checkBodySettings(b: CheckBodySettings | undefined): string[] {
  if (b === undefined) return [];
  if (b === null || typeof b !== 'object') return ['includeRequestBodyInCheck must be an object with maxRequestBytes'];
  const unknown = unknownFields(b, BODY_FIELDS, 'includeRequestBodyInCheck.');
  if (unknown.length > 0) return unknown;
  const n = b.maxRequestBytes;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
    return [`includeRequestBodyInCheck.maxRequestBytes must be an integer above 0 (Envoy refuses 0), found: ${JSON.stringify(n)}`];
  }
  return [];
}

/** The caller went away while its body was read for the check (nobody reads the answer). */
const GONE: ExtAuthzResponse = Object.freeze({
  allowed: false,
  status: 400,
  headers: Object.freeze({}),
  body: '',
  local: Object.freeze({ reason: 'the caller went away while its body was read for the check', details: 'downstream_remote_disconnect' }),
});

/** The caller went away while the check was pending: the check is cancelled (nobody reads the answer). */
export const CHECK_CANCELLED: ExtAuthzResponse = Object.freeze({
  allowed: false,
  status: 400,
  headers: Object.freeze({}),
  body: '',
  local: Object.freeze({ reason: 'the caller went away while the external authorizer was asked: the check was cancelled', details: 'downstream_remote_disconnect' }),
});

/** What the check is sent with: the body read (undefined: none, or a server that cannot give it), or the answer instead of a check. */
export type CheckBody = { readonly body: Exclude<BufferedBody, 'too-large'> | undefined } | { readonly answer: ExtAuthzResponse };

/** Reads what the check needs of the request's body, when the settings ask for it. */
export async function readCheckBody(req: AuthzRequest, settings: CheckBodySettings | undefined): Promise<CheckBody> {
  if (settings === undefined || req.body === undefined || !hasBody(req.headers)) return { body: undefined };
  // Read already (a body parser ahead of the mesh's middleware) or being read: nothing left to hold for the check.
  if (req.body.readableEnded || req.body.readableFlowing === true) return { body: undefined };
  const max = settings.maxRequestBytes ?? 0;
  let b: BufferedBody;
  try {
    b = await bufferBody(req.body, max, settings.allowPartialMessage === true);
  } catch {
    return { answer: GONE };
  }
  if (b !== 'too-large') return { body: b };
  return {
    answer: {
      allowed: false,
      status: 413,
      headers: {},
      body: 'Payload Too Large',
      local: { reason: `the request body is over includeRequestBodyInCheck.maxRequestBytes (${max}) and allowPartialMessage is off: 413, as Envoy`, details: 'request_payload_too_large' },
    },
  };
}
