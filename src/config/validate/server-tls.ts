/**
 * Validation of server-side TLS settings (`ServerTLSSettings`, shared by Gateway servers and
 * Sidecar ingress listeners): the shape of Istio's CRD (enums, list bounds, its CEL rules) and
 * Istio's `validateTLSOptions` (pkg/config/validation/validation.go): certificate sources, the
 * fields each mode needs or ignores, CRLs, and its warnings for old TLS versions and unknown or
 * duplicate cipher suites.
 *
 * @module
 */
import type { FieldPath } from '../issues.ts';
import type { ServerTLSSettings } from '../types/sidecar.ts';
import { bool, fail, list, obj, oneOf, str, warn, type Ctx, type Validator } from './schema.ts';

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** Istio's `security.ValidCipherSuites` (BoringSSL's OpenSSL names, PSK suites left out). */
const VALID_CIPHER_SUITES: ReadonlySet<string> = new Set([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA',
  'AES256-SHA',
  'DES-CBC3-SHA',
]);

/**
 * Istio's `security.IsValidCipherSuite`: a known suite, `ALL`, empty, or anything not starting
 * with a letter or digit (the `-`/`+`/`!` operators of a cipher expression are not parsed).
 */
export function isValidCipherSuite(cs: string): boolean {
  if (cs === '' || cs === 'ALL') return true;
  if (!/^[\p{L}\p{N}]/u.test(cs)) return true;
  return VALID_CIPHER_SUITES.has(cs);
}

const tlsCertificate = obj<{ serverCertificate?: string; privateKey?: string; caCertificates?: string }>({ serverCertificate: str, privateKey: str, caCertificates: str });

/** True for a set, non-empty string or list. */
const has = (v: string | readonly unknown[] | undefined): boolean => v !== undefined && v.length > 0;

/**
 * The CRD's CEL rules on `ServerTLSSettings`. Its third rule is written with the message "only one
 * of credentialName or tlsCertificates" but tests credentialNames and tlsCertificates (as the
 * first does); the rule, not the message, is what the API server applies.
 */
function checkCrdRules(raw: Record<string, unknown>, path: FieldPath, ctx: Ctx): void {
  const set = (k: string) => raw[k] !== undefined && raw[k] !== null;
  if (set('tlsCertificates') && set('credentialNames')) fail(ctx, path, 'only one of credentialNames or tlsCertificates can be set');
  if (set('credentialName') && set('credentialNames')) fail(ctx, path, 'only one of credentialName or credentialNames can be set');
}

/** Istio's `validateTLSOptions`: errors and warnings at the fields they concern. */
export function checkServerTlsOptions(tls: ServerTLSSettings, path: FieldPath, ctx: Ctx): void {
  const at = (field: string): FieldPath => [...path, field];
  if ((tls.minProtocolVersion === 'TLSV1_0' || tls.minProtocolVersion === 'TLSV1_1') && !has(tls.cipherSuites)) {
    warn(ctx, at('minProtocolVersion'), 'TLS versions below TLSV1_2 need cipherSuites compatible with them: the default suites no longer include any (Istio)');
  }
  const suites = tls.cipherSuites ?? [];
  const invalid = [...new Set(suites.filter((cs) => !isValidCipherSuite(cs)))].sort();
  const seen = new Set<string>();
  const duplicate = new Set<string>();
  for (const cs of suites) {
    if (!isValidCipherSuite(cs)) continue;
    if (seen.has(cs)) duplicate.add(cs);
    seen.add(cs);
  }
  if (invalid.length > 0) warn(ctx, at('cipherSuites'), `ignoring invalid cipher suites: ${invalid.join(', ')} (Istio)`);
  if (duplicate.size > 0) warn(ctx, at('cipherSuites'), `ignoring duplicate cipher suites: ${[...duplicate].sort().join(', ')} (Istio)`);

  const mode = tls.mode ?? 'PASSTHROUGH';
  if (mode === 'ISTIO_MUTUAL') {
    // The mesh's own certificates are used: any other source is an error.
    const fields = ['serverCertificate', 'privateKey', 'caCertificates', 'tlsCertificates', 'credentialName', 'credentialNames'] as const;
    for (const f of fields) if (has(tls[f])) fail(ctx, at(f), 'must be empty when mode is ISTIO_MUTUAL (the mesh issues the certificates)');
    return;
  }
  if (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') {
    const certs = ['caCrl', 'serverCertificate', 'privateKey', 'caCertificates', 'tlsCertificates', 'credentialName', 'credentialNames'] as const;
    if (certs.some((f) => has(tls[f]))) warn(ctx, path, `${mode} mode does not use certificates; they are ignored (Istio)`);
  }
  const sources = [has(tls.serverCertificate) && has(tls.privateKey), has(tls.credentialName), has(tls.credentialNames), has(tls.tlsCertificates)].filter(Boolean).length;
  if (sources > 1) fail(ctx, path, 'only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates may be set');
  const terminates = mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  // With a credential the certificates come from the secret, and Istio checks nothing more (not even caCrl).
  if (terminates && (has(tls.credentialName) || has(tls.credentialNames))) return;
  if (terminates) {
    const what = mode === 'SIMPLE' ? 'SIMPLE TLS' : 'MUTUAL TLS';
    if (mode !== 'SIMPLE' && !has(tls.caCertificates)) fail(ctx, at('caCertificates'), `${what} requires a client CA bundle (caCertificates)`);
    if ((tls.tlsCertificates?.length ?? 0) > 2) warn(ctx, at('tlsCertificates'), `${what} can support up to 2 server certificates (Istio)`);
    if (has(tls.tlsCertificates)) {
      (tls.tlsCertificates ?? []).forEach((c, i) => {
        if (!has(c.serverCertificate)) fail(ctx, [...path, 'tlsCertificates', i, 'serverCertificate'], `${what} requires a server certificate`);
        if (!has(c.privateKey)) fail(ctx, [...path, 'tlsCertificates', i, 'privateKey'], `${what} requires a private key`);
      });
    } else {
      if (!has(tls.serverCertificate)) fail(ctx, at('serverCertificate'), `${what} requires a server certificate`);
      if (!has(tls.privateKey)) fail(ctx, at('privateKey'), `${what} requires a private key`);
    }
  }
  if (has(tls.caCrl)) {
    if (has(tls.credentialName)) fail(ctx, at('caCrl'), 'CRL is not supported with credentialName; the CRL has to be in the credential');
    if (mode === 'SIMPLE') fail(ctx, at('caCrl'), 'CRL is not supported with SIMPLE TLS');
  }
}

/** `ServerTLSSettings` as Istio's CRD declares it (the cross-field rules of {@link checkServerTlsOptions} are left to the caller, which knows the port). */
export const serverTlsSettings: Validator<ServerTLSSettings> = obj<ServerTLSSettings>(
  {
    httpsRedirect: bool,
    mode: oneOf(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']),
    serverCertificate: str,
    privateKey: str,
    caCertificates: str,
    caCrl: str,
    credentialName: str,
    credentialNames: list(str, { min: 1, max: 2 }),
    caCertCredentialName: str,
    tlsCertificates: list(tlsCertificate, { min: 1, max: 2 }),
    subjectAltNames: list(str),
    verifyCertificateSpki: list(str),
    verifyCertificateHash: list(str),
    minProtocolVersion: oneOf(TLS_VERSIONS),
    maxProtocolVersion: oneOf(TLS_VERSIONS),
    cipherSuites: list(str),
    ecdhCurves: list(str),
    insecureSkipVerify: bool,
  },
  { check: (_tls, path, ctx, raw) => checkCrdRules(raw, path, ctx) },
);
