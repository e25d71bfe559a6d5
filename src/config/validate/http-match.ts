/**
 * Match conditions of VirtualService HTTP rules (`HTTPMatchRequest`), and the header and
 * gateway-name syntax they share with the rest of the VirtualService, checked as Istio's
 * `validateHTTPRouteMatchRequest` does.
 *
 * @module
 */
import type { StringMatch } from '../types/common.ts';
import type { HTTPMatchRequest } from '../types/networking.ts';
import { labels, namespaceName, stringMatch } from './common.ts';
import { checkGatewayName } from './gateway-names.ts';
import { bool, fail, list, map, obj, port, str, strWith, unsupported, warn, type Validator } from './schema.ts';

/** HTTP token characters (RFC 7230 `tchar`): what Istio allows in header names. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$/;

/** The pseudo-headers a header match may name (RFC 7540 §8.1.2). */
export const PSEUDO_HEADERS: readonly string[] = [':method', ':scheme', ':authority', ':path', ':status'];

/** The prefix of JWT-claim routing keys. */
export const JWT_CLAIM_PREFIX = '@request.auth.claims';

/**
 * True for a JWT-claim routing key, as Istio's `jwt.ToRoutingClaim` reads it:
 * `@request.auth.claims.<a>[.<b>…]` or `@request.auth.claims[<a>][<b>…]` (prefix case-insensitive).
 */
export function isJwtClaimKey(name: string): boolean {
  if (!name.toLowerCase().startsWith(JWT_CLAIM_PREFIX)) return false;
  const rest = name.slice(JWT_CLAIM_PREFIX.length);
  return (rest.startsWith('.') && rest.length > 1) || (rest.startsWith('[') && rest.endsWith(']') && rest.length > 2);
}

/** Checks a header match key as Istio's `ValidateHTTPHeaderNameOrJwtClaimRoute`: a token, a pseudo-header or a JWT claim. */
export function checkMatchHeaderName(name: string): string | undefined {
  if (name === '') return 'header name must not be empty';
  if (isJwtClaimKey(name) || PSEUDO_HEADERS.includes(name)) return undefined;
  if (name.startsWith(':')) return `"${name}" is not a pseudo-header (${PSEUDO_HEADERS.join(', ')})`;
  return TOKEN.test(name) ? undefined : `invalid header name "${name}": a header name is a token (letters, digits and !#$%&'*+-.^_\`|~)`;
}

/** A gateway reference list (`gateways`, `match[].gateways`); see {@link checkGatewayName}. */
export const gatewayNames: Validator<string[]> = (v, path, ctx) =>
  list(
    strWith((name) => checkGatewayName(name).error),
  )(v, path, ctx)?.map((name, i) => {
    const warning = checkGatewayName(name).warning;
    if (warning !== undefined) warn(ctx, [...path, i], warning);
    return name;
  });

/** A StringMatch whose `regex` must not be empty (Istio's `validateStringMatch`). */
function strictMatch(allowEmptyPrefix = false): Validator<StringMatch> {
  const base = stringMatch({ allowEmptyPrefix });
  return (v, path, ctx) => {
    const m = base(v, path, ctx);
    if (m?.regex === '') return fail(ctx, [...path, 'regex'], 'regex must not be empty');
    return m;
  };
}

/** A `withoutHeaders` value: a StringMatch, where `regex: "*"` means "present" (so the header must be absent). */
const withoutMatch: Validator<StringMatch> = (v, path, ctx) => {
  if (typeof v === 'object' && v !== null && (v as StringMatch).regex === '*' && Object.keys(v).length === 1) return { regex: '*' };
  return strictMatch()(v, path, ctx);
};

/** A header or query parameter match, where `regex: "*"` is refused with a hint (Istio accepts it only in withoutHeaders). */
const headerMatch: Validator<StringMatch> = (v, path, ctx) => {
  if (typeof v === 'object' && v !== null && (v as StringMatch).regex === '*') {
    return fail(ctx, [...path, 'regex'], '"*" is not a regular expression; for "is present" write {} (Istio reads regex "*" as presence only in withoutHeaders)');
  }
  return strictMatch()(v, path, ctx);
};

const headerMatches = map(headerMatch, { key: checkMatchHeaderName });

/** Validates one HTTP match block. */
export const matchRequest: Validator<HTTPMatchRequest> = obj<HTTPMatchRequest>({
  name: str,
  uri: strictMatch(true),
  scheme: strictMatch(),
  method: strictMatch(),
  authority: strictMatch(),
  headers: headerMatches,
  port,
  sourceLabels: labels,
  gateways: gatewayNames,
  queryParams: map(headerMatch),
  ignoreUriCase: bool,
  withoutHeaders: map(withoutMatch, { key: checkMatchHeaderName }),
  sourceNamespace: namespaceName,
  statPrefix: unsupported(str, 'meshlet reports Istio metrics, not per-route Envoy stats'),
});
