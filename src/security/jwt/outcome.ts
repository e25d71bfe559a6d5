/**
 * What the JWT authenticator reads and answers: the request it checks (whose headers and path it
 * may change), a success (the principal, claims, audiences and presenter of the verified token;
 * anonymous when no rule found a token) and a failure as Envoy's `jwt_authn` words it (401, or
 * 403 for an audience that is not allowed, with Envoy's body text and a `WWW-Authenticate:
 * Bearer realm=…` header).
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';
import { describeLocation, type TokenCarrier } from './locations.ts';
import type { Granted, Verified } from './rule-view.ts';
import { httpStatusOf, JwtStatus, statusText } from './status.ts';
import type { ClaimObject } from './token.ts';

/** Envoy's `MaximumUriLength`: the realm's path is cut to this many characters. */
const MAX_REALM_PATH = 256;

/** The request as the authenticator sees it: the view it reads, the headers and path it may change. */
export interface JwtRequest extends TokenCarrier {
  readonly method: string;
  readonly scheme: string;
  /** Host / :authority. */
  readonly authority: string;
  path: string;
  readonly headers: Headers;
}

/** A request that passed. */
export interface JwtSuccess {
  readonly ok: true;
  /** `iss/sub` of the verified token; undefined without one (or when it lacks `iss` or `sub`). */
  readonly principal: string | undefined;
  /** The token's payload as authorization matches it (space-delimited claims split into lists). */
  readonly claims: ClaimObject | undefined;
  /** `aud`, as a list. */
  readonly audiences: readonly string[] | undefined;
  /** `azp`. */
  readonly presenter: string | undefined;
  /** The rule that verified the token. */
  readonly rule: string | undefined;
  /** What happened, for logs: which token, which outputs, what was left out. */
  readonly detail: string;
}

/** A request that failed. */
export interface JwtFailure {
  readonly ok: false;
  readonly status: JwtStatus;
  /** 401, or 403 for an audience that is not allowed. */
  readonly httpStatus: number;
  /** Envoy's body text (`Jwt is expired`, …). */
  readonly body: string;
  /** The `WWW-Authenticate` header value. */
  readonly wwwAuthenticate: string;
  /** Which rule and location, and why in detail, for logs. */
  readonly reason: string;
}

/** The outcome of `JwtAuthenticator.authenticate` (`authenticator.ts`). */
export type JwtOutcome = JwtSuccess | JwtFailure;

/** A request that passed without a token. */
export const ANONYMOUS: JwtSuccess = Object.freeze({ ok: true, principal: undefined, claims: undefined, audiences: undefined, presenter: undefined, rule: undefined, detail: 'no token' });

/** A quoted-string (RFC 9110 §5.6.4) with no control characters. */
function quoted(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return `"${s.replace(/[\u0000-\u001f\u007f]/g, '').replace(/["\\]/g, '\\$&')}"`;
}

/**
 * A request whose token verified. Its `detail` (only `meshlet explain` and logs read it) is
 * written when read, not on every request.
 */
export class Passed implements JwtSuccess {
  readonly ok = true;
  readonly principal: string | undefined;
  readonly claims: ClaimObject;
  readonly audiences: readonly string[];
  readonly presenter: string | undefined;
  readonly rule: string;
  readonly #refused: readonly string[];
  readonly #verified: readonly Verified[];

  constructor(g: Granted, rule: string, verified: readonly Verified[]) {
    this.principal = g.principal;
    this.claims = g.claims;
    this.audiences = g.audiences;
    this.presenter = g.presenter;
    this.rule = rule;
    this.#refused = g.refused;
    this.#verified = verified;
  }

  get detail(): string {
    const v = this.#verified;
    let detail = `${this.rule}: verified (${v.length === 1 ? describeLocation((v[0] as Verified).location) : v.map((x) => describeLocation(x.location)).join(', ')})`;
    if (this.#refused.length > 0) detail += `; not written (control characters): ${this.#refused.join(', ')}`;
    return detail;
  }
}

/** The failure of `req` with `status`: Envoy's answer, and `reason` for logs. */
export function failure(req: JwtRequest, status: JwtStatus, reason: string): JwtFailure {
  const q = req.path.indexOf('?');
  const path = (q === -1 ? req.path : req.path.slice(0, q)).slice(0, MAX_REALM_PATH);
  const realm = `Bearer realm=${quoted(`${req.scheme}://${req.authority}${path}`)}`;
  return {
    ok: false,
    status,
    httpStatus: httpStatusOf(status),
    body: statusText(status),
    wwwAuthenticate: status === JwtStatus.JwtMissed ? realm : `${realm}, error="invalid_token"`,
    reason: reason === '' ? statusText(status) : reason,
  };
}
