/**
 * What the authenticator keeps per token and rule, and its results: the checks of a token against
 * a rule that do not change with time (issuer, audiences — kept on the verified-token cache's
 * entry), what a verified token grants (principal, claims, output headers), the result types
 * of checking a token and a rule, and where a check stopped when it must wait for keys or a
 * signature ({@link Unsettled}, {@link Paused}).
 *
 * @module
 */
import type { Headers } from '../../core/handler.ts';
import type { CompiledRule } from './compile.ts';
import type { JwksSource } from './jwks-source.ts';
import { describeLocation, type TokenLocation } from './locations.ts';
import { normalizeClaims, type OutputReport, writeOutputs } from './outputs.ts';
import { JwtStatus, statusText } from './status.ts';
import type { CachedToken } from './token-cache.ts';
import { audiencesAllowed, type ClaimObject, type ParsedJwt } from './token.ts';

/** A token found for a rule. */
export interface Located {
  readonly token: string;
  readonly location: TokenLocation;
}

/** A token that verified. */
export interface Verified extends Located {
  readonly jwt: ParsedJwt;
  readonly view: RuleView;
}

export type Failed = { readonly ok: false; readonly status: JwtStatus; readonly why: string };

/** What a success gives, computed once per token and rule. */
export interface Granted {
  readonly principal: string | undefined;
  readonly claims: ClaimObject;
  readonly audiences: readonly string[];
  readonly presenter: string | undefined;
  /** Output headers to write, values made header-safe. */
  readonly headers: readonly (readonly [string, string])[];
  /** Claims not written (a control character in the value). */
  readonly refused: readonly string[];
}

/** What a rule concluded about a token that does not change with time, kept on the cache entry. */
export interface RuleView {
  /** The issuer check failed. */
  readonly issuer: Failed | undefined;
  /** The audience check failed (checked after the time, as Envoy orders them). */
  readonly audience: Failed | undefined;
  granted?: Granted;
  /** The token's success under this rule, once a key verified it (the same object for every request). */
  passed?: TokenResult;
  /**
   * The rule's result when this token alone was found, at `location` (where it was last found),
   * and the authenticator's success for it (outcome.ts's `Passed`, typed here without importing
   * it): made once, shared by the requests that carry the token there.
   */
  found?: { readonly location: TokenLocation; readonly result: RuleResult; readonly verified: readonly Verified[]; passed: object | undefined };
}

export type RuleResult = { readonly ok: true; readonly verified: readonly Verified[] } | Failed;

export type TokenResult = { readonly ok: true; readonly jwt: ParsedJwt; readonly view: RuleView } | Failed;

/** The checks against a rule that do not change with time: issuer and audiences. */
export function ruleView(rule: CompiledRule, jwt: ParsedJwt): RuleView {
  return {
    issuer:
      rule.issuer !== '' && jwt.iss !== rule.issuer
        ? { ok: false, status: JwtStatus.JwtUnknownIssuer, why: `iss ${JSON.stringify(jwt.iss)}, the rule's issuer is ${JSON.stringify(rule.issuer)}` }
        : undefined,
    audience: audiencesAllowed(rule.audienceSet, jwt.audiences)
      ? undefined
      : { ok: false, status: JwtStatus.JwtAudienceNotAllowed, why: `aud ${JSON.stringify(jwt.audiences)}, allowed ${JSON.stringify(rule.audiences)}` },
  };
}

/** What a verified token gives under a rule: principal, claims for authorization, output headers. */
export function grant(rule: CompiledRule, jwt: ParsedJwt): Granted {
  const out: Headers = Object.create(null);
  const report: OutputReport = writeOutputs(out, rule.payloadHeader, jwt.payloadB64, rule.claimHeaders, jwt.payload);
  const azp = Object.hasOwn(jwt.payload, 'azp') ? jwt.payload.azp : undefined;
  return Object.freeze({
    principal: jwt.iss !== '' && jwt.sub !== '' ? `${jwt.iss}/${jwt.sub}` : undefined,
    claims: normalizeClaims(jwt.payload, rule.spaceDelimitedClaims),
    audiences: jwt.audiences,
    presenter: typeof azp === 'string' ? azp : undefined,
    headers: Object.freeze(report.written.map((h) => [h, out[h] as string] as const)),
    refused: Object.freeze(report.refused),
  });
}

/** A token whose checks the cache could not settle: the keys (asked for already) decide. */
export class Unsettled {
  readonly entry: CachedToken;
  readonly view: RuleView;
  /** What the key source answered when asked (keys, a status, or a promise of either). */
  readonly current: ReturnType<JwksSource['keys']>;

  constructor(entry: CachedToken, view: RuleView, current: ReturnType<JwksSource['keys']>) {
    this.entry = entry;
    this.view = view;
    this.current = current;
  }
}

/** Where a rule's check stopped to wait: at token `at` (counting down), after `verified`. */
export class Paused {
  readonly at: number;
  readonly verified: Verified[];
  readonly token: Unsettled;

  constructor(at: number, verified: Verified[], token: Unsettled) {
    this.at = at;
    this.verified = verified;
    this.token = token;
  }
}

/** A rule's failure for one of its tokens. */
export function tokenFailed(rule: CompiledRule, t: Located, r: Failed): Failed {
  return { ok: false, status: r.status, why: `${rule.name}: ${statusText(r.status)} (token in ${describeLocation(t.location)}${r.why === '' ? '' : `; ${r.why}`})` };
}
