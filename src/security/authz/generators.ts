/**
 * One matcher per attribute, as Istio's attribute generators build Envoy RBAC matchers
 * (`pilot/pkg/security/authz/model/generator.go`): what each `from`/`to` field and `when` key
 * compares, against which request attribute, with which string semantics. Each generator turns
 * a value (or, for the JWT ones, the whole value list) into a predicate, or into an error when
 * the value cannot be evaluated — the caller then applies Istio's `checkError` (ALLOW drops the
 * rule, DENY/AUDIT/CUSTOM drop the value).
 *
 * @module
 */
import type { Attrs } from './attrs.ts';
import { Cidr } from './ip.ts';
import { compilePathTemplate, isPathTemplate } from './path-template.ts';
import { escapeRegex, exact, fullRegex, type HeaderValueMatcher, istioHeaderValue, istioString, nonEmpty, prefix, type StringMatcher, suffix } from './strings.ts';

/** A predicate over one request's attributes. */
export type Pred = (a: Attrs) => boolean;

/** A generator's answer: a predicate, or why the value cannot be evaluated. */
export type Gen = Pred | { readonly error: string };

/** Always true (Envoy's `any: true`). */
export const ANY: Pred = () => true;
/** Never true (Istio's `rbacPolicyMatchNever`). */
export const NEVER: Pred = () => false;

/** OR of predicates (the one predicate itself when there is one). */
export function or(preds: readonly Pred[]): Pred {
  if (preds.length === 1) return preds[0] as Pred;
  if (preds.length === 2) {
    const [x, y] = preds as [Pred, Pred];
    return (a) => x(a) || y(a);
  }
  return (a) => {
    for (let i = 0; i < preds.length; i++) if ((preds[i] as Pred)(a)) return true;
    return false;
  };
}

/** AND of predicates. */
export function and(preds: readonly Pred[]): Pred {
  if (preds.length === 0) return ANY;
  if (preds.length === 1) return preds[0] as Pred;
  if (preds.length === 2) {
    const [x, y] = preds as [Pred, Pred];
    return (a) => x(a) && y(a);
  }
  return (a) => {
    for (let i = 0; i < preds.length; i++) if (!(preds[i] as Pred)(a)) return false;
    return true;
  };
}

/** NOT. */
export function not(p: Pred): Pred {
  return (a) => !p(a);
}

// --- connection and IP attributes -------------------------------------------------------

function cidr(v: string): Cidr | { error: string } {
  return Cidr.parse(v) ?? { error: `invalid IP or CIDR "${v}"` };
}

/** `source.ip`, `ipBlocks`: the TCP peer's address. */
export function srcIp(v: string): Gen {
  const c = cidr(v);
  return 'error' in c ? c : (a) => c.contains(a.srcVersion(), a.srcIp);
}

/** `remote.ip`, `remoteIpBlocks`: the client address from X-Forwarded-For. */
export function remoteIp(v: string): Gen {
  const c = cidr(v);
  return 'error' in c ? c : (a) => c.contains(a.remoteVersion(), a.remoteIp);
}

/** `destination.ip`: the local address. */
export function destIp(v: string): Gen {
  const c = cidr(v);
  return 'error' in c ? c : (a) => c.contains(a.destVersion(), a.destIp);
}

/** `ports`, `destination.port`: the local port (Go's `ParseUint`, at most 65535). */
export function destPort(v: string): Gen {
  if (!/^\d+$/.test(v) || Number(v) > 65535) return { error: `invalid port "${v}"` };
  const p = Number(v);
  return (a) => a.req.localPort === p;
}

/** `connection.sni`: the SNI the client sent ('' for plaintext). */
export function connSni(v: string): Gen {
  const m = istioString(v);
  return (a) => m.match(a.req.sni ?? '');
}

// --- peer identity (the certificate's URI SAN, as Envoy's `authenticated` principal) ----

/** A matcher on the peer's URI SAN; a connection without a peer certificate never matches. */
function authenticated(m: StringMatcher): Pred {
  return (a) => {
    const uri = a.peerUri();
    return uri !== undefined && m.match(uri);
  };
}

/** RE2 `.*` in generated regexes: any characters but a newline. */
const DOT_STAR = '[^\\n]*';

/** `principals`, `source.principal`: `StringMatcherWithPrefix(v, "spiffe://")`. */
export function srcPrincipal(v: string): Gen {
  return authenticated(istioString(v, 'spiffe://'));
}

/** `namespaces`, `source.namespace`: the regex `.*\/ns/<v, each * as .*>/.*`. */
export function srcNamespace(v: string): Gen {
  const ns = v.split('*').map(escapeRegex).join(DOT_STAR);
  const source = `.*/ns/${v.split('*').join('.*')}/.*`;
  if (!v.includes('*')) {
    const needle = `/ns/${v}/`;
    return authenticated({
      match: (s) => s.includes(needle) && !s.includes('\n'),
      matchTo: () => false,
      toString: () => `regex:${source}`,
    });
  }
  return authenticated(fullRegex(source, `${DOT_STAR}\\/ns\\/${ns}\\/${DOT_STAR}`));
}

/** `serviceAccounts`, `source.serviceAccount`: `sa` (the policy's namespace) or `ns/sa`. */
export function srcServiceAccount(policyNamespace: string, v: string): Gen {
  const slash = v.indexOf('/');
  const ns = slash === -1 ? policyNamespace : v.slice(0, slash);
  const sa = slash === -1 ? v : v.slice(slash + 1);
  const source = `spiffe://.+/ns/${ns}/(.+/|)sa/${sa}(/.+)?`;
  const js = `spiffe:\\/\\/[^\\n]+\\/ns\\/${escapeRegex(ns)}\\/(?:[^\\n]+\\/|)sa\\/${escapeRegex(sa)}(?:\\/[^\\n]+)?`;
  return authenticated(fullRegex(source, js));
}

/** `trustDomains`, `source.trustDomain`: the trust domain part of the peer's SPIFFE id. */
export function srcTrustDomain(v: string): Gen {
  if (v === '*') return authenticated(prefix('spiffe://'));
  if (!v.includes('*')) return authenticated(prefix(`spiffe://${v}/`));
  const star = v.indexOf('*');
  const [p0, p1] = [v.slice(0, star), v.slice(star + 1)];
  return authenticated(fullRegex(`spiffe://${p0}[^/]*${p1}/.*`, `spiffe:\\/\\/${escapeRegex(p0)}[^\\/]*${escapeRegex(p1)}\\/${DOT_STAR}`));
}

// --- request attributes ---------------------------------------------------------------

function headerPred(name: string, m: HeaderValueMatcher): Pred {
  if (m.present) return (a) => a.header(name) !== undefined;
  const value = m.value;
  return (a) => {
    const h = a.header(name);
    return h !== undefined && value.match(h);
  };
}

/** `hosts`: the `:authority` header, ignoring case. */
export function host(v: string): Gen {
  return headerPred(':authority', istioHeaderValue(v, true));
}

/** `methods`: the `:method` header. */
export function method(v: string): Gen {
  return headerPred(':method', istioHeaderValue(v, false));
}

/**
 * `paths`: the path without query and fragment; URI templates as Envoy's `uri_template`. A
 * `CONNECT` has no path (Envoy's HTTP/1 codec gives its authority-form target as `:authority`
 * and sets no `:path`, and RBAC's path matcher is false without one), so no path matches it —
 * `paths: ["*"]` or `["/*"]` does not admit a tunnel, `notPaths` does. An HTTP/2 extended
 * CONNECT (RFC 8441) reaches the rules as Envoy's codec turns it, a `GET` with `upgrade` and its
 * `:path` (adapters/server/h2-connect.ts).
 */
export function path(v: string): Gen {
  const m = isPathTemplate(v) ? compilePathTemplate(v) : istioString(v);
  if ('error' in m) return { error: m.error };
  return (a) => a.req.method !== 'CONNECT' && m.matchTo(a.req.path, a.pathEnd());
}

/** `extractNameInBrackets`. */
function nameInBrackets(s: string): string | undefined {
  return s.startsWith('[') && s.endsWith(']') && s.length >= 2 ? s.slice(1, -1) : undefined;
}

/** `request.headers[<name>]`: the header (names compare ignoring case, as Envoy lower-cases them). */
export function requestHeader(key: string, v: string): Gen {
  const name = nameInBrackets(key.slice('request.headers'.length));
  if (name === undefined || name === '') return { error: `bad key "${key}": expecting request.headers[<name>]` };
  return headerPred(name.toLowerCase(), istioHeaderValue(v, false));
}

/** `extractNameInNestedBrackets`: `[a][b]` → `['a', 'b']`; `[a.b]` → `['a.b']`. */
export function claimPath(s: string): string[] | undefined {
  const claims: string[] = [];
  const findEnd = (begin: number): number => {
    if (begin >= s.length || s[begin] !== '[') return -1;
    for (let i = begin + 1; i < s.length; i++) {
      if (s[i] === '[') return -1;
      if (s[i] === ']') return i;
    }
    return -1;
  };
  for (let begin = 0; begin < s.length; ) {
    const end = findEnd(begin);
    if (end === -1) {
      const one = nameInBrackets(s);
      return one === undefined ? undefined : [one];
    }
    claims.push(s.slice(begin + 1, end));
    begin = end + 1;
  }
  return claims;
}

/** Envoy's JWT claim matcher: a string claim that matches, or a list claim with a string element that matches. */
function claimMatches(v: unknown, ms: readonly StringMatcher[]): boolean {
  if (typeof v === 'string') {
    for (const m of ms) if (m.match(v)) return true;
    return false;
  }
  if (Array.isArray(v)) {
    for (const e of v) {
      if (typeof e !== 'string') continue;
      for (const m of ms) if (m.match(e)) return true;
    }
  }
  return false;
}

/** `request.auth.claims[<a>][<b>]` (all values at once, one matcher). */
export function requestClaims(key: string, values: readonly string[]): Gen {
  const path = claimPath(key.slice('request.auth.claims'.length));
  if (path === undefined) return { error: `bad key "${key}": expecting request.auth.claims[<name>] or [<a>][<b>]` };
  const ms = values.map((v) => istioString(v));
  return (a) => claimMatches(a.claim(path), ms);
}

/** `request.auth.audiences`: the `aud` claim. */
export function requestAudiences(values: readonly string[]): Gen {
  return requestClaims('request.auth.claims[aud]', values);
}

/** `request.auth.presenter`: the `azp` claim. */
export function requestPresenter(values: readonly string[]): Gen {
  return requestClaims('request.auth.claims[azp]', values);
}

/**
 * `requestPrincipals`, `request.auth.principal`: each value is split at its last `/` into an
 * issuer and a subject matcher on the JWT's `iss` and `sub` claims, Istio's way: `*` → both
 * non-empty; `*x/y` → iss suffix `x` (any when `*`), sub exact `y`; `*x` → any iss, sub
 * suffix `x`; `x/y*` → iss exact `x`, sub prefix `y` (any when `*`); `x*` → iss prefix `x`, any
 * sub; `x/y` → exact both (`x` alone: iss `x` and an empty sub).
 */
export function requestPrincipal(values: readonly string[]): Gen {
  const pairs = values.map((v): [StringMatcher, StringMatcher] => {
    const idx = v.lastIndexOf('/');
    const found = idx >= 0;
    const iss = found ? v.slice(0, idx) : v;
    const sub = found ? v.slice(idx + 1) : '';
    if (v === '*') return [nonEmpty(), nonEmpty()];
    if (v.startsWith('*')) {
      if (found) return [iss === '*' ? nonEmpty() : suffix(iss.slice(1)), exact(sub)];
      return [nonEmpty(), suffix(v.slice(1))];
    }
    if (v.endsWith('*')) {
      if (found) return [exact(iss), sub === '*' ? nonEmpty() : prefix(sub.slice(0, -1))];
      return [prefix(v.slice(0, -1)), nonEmpty()];
    }
    return [exact(iss), exact(sub)];
  });
  return (a) => {
    const iss = a.iss();
    const sub = a.sub();
    if (iss === undefined || sub === undefined) return false;
    // By index, not `for (const [mi, ms] of pairs)`: destructuring each pair went through an
    // iterator, ~256 bytes on every request a requestPrincipals rule was asked about.
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[i] as [StringMatcher, StringMatcher];
      if (p[0].match(iss) && p[1].match(sub)) return true;
    }
    return false;
  };
}

/**
 * `experimental.envoy.filters.*[…]`: Envoy dynamic metadata set by other Envoy filters.
 * meshlet has no such filters, so the attribute cannot be evaluated (ALLOW: the rule is
 * dropped; DENY: the condition is dropped, so the rule matches wider).
 */
export function envoyFilter(key: string): Gen {
  const parts = key.slice('experimental.'.length).replace(/\]$/, '').split('[');
  if (parts.length < 2) return { error: `invalid key: ${key}` };
  return { error: `${key}: meshlet has no Envoy filter metadata to match` };
}
