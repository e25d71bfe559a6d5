/**
 * Why a JWT was refused, as Envoy's `jwt_authn` filter says it: the statuses of
 * `google/jwt_verify_lib` (`src/status.cc`) that a sidecar can answer with, their body texts
 * word for word, and the HTTP status Envoy picks (`filter.cc` `onComplete`: 403 for an audience
 * that is not allowed, 401 for everything else).
 *
 * Two statuses are meshlet's own and say so: {@link JwtStatus.TokenTooLarge} (a token longer
 * than the limit is refused before it is parsed) and {@link JwtStatus.MultipleTokens} reuses the
 * library's "Found multiple Jwt tokens" text for one location that carries two different tokens
 * (a repeated header or query parameter), which Envoy would resolve by taking the first.
 *
 * @module
 */

/** A verification outcome. `Ok` is the only success. */
export const JwtStatus = Object.freeze({
  Ok: 'Ok',
  JwtMissed: 'JwtMissed',
  JwtNotYetValid: 'JwtNotYetValid',
  JwtExpired: 'JwtExpired',
  JwtBadFormat: 'JwtBadFormat',
  JwtHeaderParseErrorBadBase64: 'JwtHeaderParseErrorBadBase64',
  JwtHeaderParseErrorBadJson: 'JwtHeaderParseErrorBadJson',
  JwtHeaderBadAlg: 'JwtHeaderBadAlg',
  JwtHeaderNotImplementedAlg: 'JwtHeaderNotImplementedAlg',
  JwtHeaderBadKid: 'JwtHeaderBadKid',
  JwtPayloadParseErrorBadBase64: 'JwtPayloadParseErrorBadBase64',
  JwtPayloadParseErrorBadJson: 'JwtPayloadParseErrorBadJson',
  JwtPayloadParseErrorIssNotString: 'JwtPayloadParseErrorIssNotString',
  JwtPayloadParseErrorSubNotString: 'JwtPayloadParseErrorSubNotString',
  JwtPayloadParseErrorIatNotInteger: 'JwtPayloadParseErrorIatNotInteger',
  JwtPayloadParseErrorIatOutOfRange: 'JwtPayloadParseErrorIatOutOfRange',
  JwtPayloadParseErrorNbfNotInteger: 'JwtPayloadParseErrorNbfNotInteger',
  JwtPayloadParseErrorNbfOutOfRange: 'JwtPayloadParseErrorNbfOutOfRange',
  JwtPayloadParseErrorExpNotInteger: 'JwtPayloadParseErrorExpNotInteger',
  JwtPayloadParseErrorExpOutOfRange: 'JwtPayloadParseErrorExpOutOfRange',
  JwtPayloadParseErrorJtiNotString: 'JwtPayloadParseErrorJtiNotString',
  JwtPayloadParseErrorAudNotString: 'JwtPayloadParseErrorAudNotString',
  JwtSignatureParseErrorBadBase64: 'JwtSignatureParseErrorBadBase64',
  JwtEd25519SignatureWrongLength: 'JwtEd25519SignatureWrongLength',
  JwtUnknownIssuer: 'JwtUnknownIssuer',
  JwtAudienceNotAllowed: 'JwtAudienceNotAllowed',
  JwtVerificationFail: 'JwtVerificationFail',
  MultipleTokens: 'MultipleTokens',
  JwksNoValidKeys: 'JwksNoValidKeys',
  JwksKidAlgMismatch: 'JwksKidAlgMismatch',
  JwksFetchFail: 'JwksFetchFail',
  TokenTooLarge: 'TokenTooLarge',
} as const);

/** A {@link JwtStatus} value. */
export type JwtStatus = (typeof JwtStatus)[keyof typeof JwtStatus];

/** The body text Envoy answers with for each status (`jwt_verify_lib` `getStatusString`). */
const TEXT: Readonly<Record<JwtStatus, string>> = Object.freeze({
  Ok: 'OK',
  JwtMissed: 'Jwt is missing',
  JwtNotYetValid: 'Jwt not yet valid',
  JwtExpired: 'Jwt is expired',
  JwtBadFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  JwtHeaderParseErrorBadBase64: 'Jwt header is an invalid Base64url encoded',
  JwtHeaderParseErrorBadJson: 'Jwt header is an invalid JSON',
  JwtHeaderBadAlg: 'Jwt header [alg] field is required and must be a string',
  JwtHeaderNotImplementedAlg: 'Jwt header [alg] is not supported',
  JwtHeaderBadKid: 'Jwt header [kid] field is not a string',
  JwtPayloadParseErrorBadBase64: 'Jwt payload is an invalid Base64url encoded',
  JwtPayloadParseErrorBadJson: 'Jwt payload is an invalid JSON',
  JwtPayloadParseErrorIssNotString: 'Jwt payload [iss] field is not a string',
  JwtPayloadParseErrorSubNotString: 'Jwt payload [sub] field is not a string',
  JwtPayloadParseErrorIatNotInteger: 'Jwt payload [iat] field is not an integer',
  JwtPayloadParseErrorIatOutOfRange: 'Jwt payload [iat] field is not a positive 64 bit integer',
  JwtPayloadParseErrorNbfNotInteger: 'Jwt payload [nbf] field is not an integer',
  JwtPayloadParseErrorNbfOutOfRange: 'Jwt payload [nbf] field is not a positive 64 bit integer',
  JwtPayloadParseErrorExpNotInteger: 'Jwt payload [exp] field is not an integer',
  JwtPayloadParseErrorExpOutOfRange: 'Jwt payload [exp] field is not a positive 64 bit integer',
  JwtPayloadParseErrorJtiNotString: 'Jwt payload [jti] field is not a string',
  JwtPayloadParseErrorAudNotString: 'Jwt payload [aud] field is not a string or string list',
  JwtSignatureParseErrorBadBase64: 'Jwt signature is an invalid Base64url encoded',
  JwtEd25519SignatureWrongLength: 'Jwt ED25519 signature is wrong length',
  JwtUnknownIssuer: 'Jwt issuer is not configured',
  JwtAudienceNotAllowed: 'Audiences in Jwt are not allowed',
  JwtVerificationFail: 'Jwt verification fails',
  MultipleTokens: 'Found multiple Jwt tokens',
  JwksNoValidKeys: "Jwks doesn't have any valid public key",
  JwksKidAlgMismatch: "Jwks doesn't have key to match kid or alg from Jwt",
  JwksFetchFail: 'Jwks remote fetch is failed',
  TokenTooLarge: 'Jwt is too large',
});

/** The answer's body text for `status`. */
export function statusText(status: JwtStatus): string {
  return TEXT[status];
}

/** The HTTP status Envoy answers a failed verification with: 403 for a refused audience, else 401. */
export function httpStatusOf(status: JwtStatus): number {
  return status === JwtStatus.JwtAudienceNotAllowed ? 403 : 401;
}
