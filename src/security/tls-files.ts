/**
 * The files DestinationRule `tls` blocks name (`caCertificates`, `clientCertificate`,
 * `privateKey`, `caCrl`), read once per config: when a config is installed, every file named by
 * any DestinationRule is read and checked (it exists, it holds PEM of the right kind); a
 * problem is a config finding naming the rule, the field and the file (`MESHLET0103`), and the
 * clusters that use that file fail closed with the same words (never plaintext). Clusters built
 * later in the same config use the contents read then.
 *
 * Reading happens on the workload (in control-plane mode too): the paths are the workload's.
 *
 * @module
 */
import { type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type ConfigIssue, formatPath, type FieldPath, makeIssue } from '../config/issues.ts';
import { type AnyResource, ofKind, type Resource } from '../config/resource.ts';
import type { ClientTLSSettings } from '../config/types/destination-rule.ts';
import { privateKeyFrom } from './pki/keys.ts';

/** The finding code of an unreadable or invalid DestinationRule TLS file. */
export const TLS_FILE_CODE = 'MESHLET0103';

/** The file fields of a `tls` block and the PEM each must hold. */
const FIELDS = {
  caCertificates: 'CERTIFICATE',
  clientCertificate: 'CERTIFICATE',
  privateKey: 'PRIVATE KEY',
  caCrl: 'X509 CRL',
} as const;

/** A file field of a DestinationRule `tls` block. */
export type TlsFileField = keyof typeof FIELDS;

/** One file, read: its text, or why it cannot be used. */
export type TlsFile = { readonly ok: true; readonly pem: string } | { readonly ok: false; readonly error: string };

function check(field: TlsFileField, path: string): TlsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String((e as Error).message);
    return { ok: false, error: `cannot read ${path}: ${why}` };
  }
  const kind = FIELDS[field];
  // A private key may be PKCS#8 (PRIVATE KEY), or EC / RSA (EC PRIVATE KEY, RSA PRIVATE KEY).
  const re = kind === 'PRIVATE KEY' ? /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/ : new RegExp(`-----BEGIN ${kind}-----`);
  if (!re.test(text)) return { ok: false, error: `${path} holds no PEM ${kind} (${field})` };
  return { ok: true, pem: text };
}

/**
 * Whether a MUTUAL block's client certificate and private key (both read, both PEM of the right
 * kind) can be used together: the first certificate parses, the key parses (unencrypted), and the
 * key is the certificate's. The error names the file at fault, or both.
 */
function checkPair(certPath: string, certPem: string, keyPath: string, keyPem: string): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    return `${certPath}: its certificate cannot be parsed (${(e as Error).message}) (clientCertificate)`;
  }
  let key: KeyObject;
  try {
    key = privateKeyFrom(keyPem, keyPath);
  } catch (e) {
    return `${(e as Error).message} (privateKey)`;
  }
  if (!cert.checkPrivateKey(key)) return `the private key in ${keyPath} does not match the certificate in ${certPath} (privateKey)`;
  return undefined;
}

/** Every `tls` block of a DestinationRule with the field path it is at. */
function* tlsBlocks(dr: Resource<'DestinationRule'>): Generator<[ClientTLSSettings, FieldPath]> {
  const tp = dr.spec.trafficPolicy;
  if (tp?.tls !== undefined) yield [tp.tls, ['spec', 'trafficPolicy', 'tls']];
  for (const [i, p] of (tp?.portLevelSettings ?? []).entries()) if (p.tls !== undefined) yield [p.tls, ['spec', 'trafficPolicy', 'portLevelSettings', i, 'tls']];
  for (const [s, sub] of (dr.spec.subsets ?? []).entries()) {
    const stp = sub.trafficPolicy;
    if (stp?.tls !== undefined) yield [stp.tls, ['spec', 'subsets', s, 'trafficPolicy', 'tls']];
    for (const [i, p] of (stp?.portLevelSettings ?? []).entries()) if (p.tls !== undefined) yield [p.tls, ['spec', 'subsets', s, 'trafficPolicy', 'portLevelSettings', i, 'tls']];
  }
}

/** The TLS files of one config, read once. */
export class TlsFiles {
  readonly #files = new Map<string, TlsFile>();
  /** The findings about them (unreadable, not PEM), one per rule and field. */
  readonly issues: readonly ConfigIssue[];

  /** An empty set (no config yet). */
  static readonly EMPTY = new TlsFiles([]);

  /** Reads every file the DestinationRules among `resources` name (each once). */
  constructor(resources: readonly AnyResource[]) {
    const issues: ConfigIssue[] = [];
    for (const dr of ofKind(resources, 'DestinationRule')) {
      for (const [tls, at] of tlsBlocks(dr)) {
        // SIMPLE origination ignores client files (Istio reads them only for MUTUAL).
        const finding = (field: TlsFileField, error: string): void => {
          const p = [...at, field];
          issues.push(
            makeIssue({
              level: 'warning',
              code: TLS_FILE_CODE,
              file: dr.source.file,
              line: dr.source.locate?.(p) ?? dr.source.line,
              resource: dr.ref,
              path: formatPath(p),
              message: `${error}; calls to ${dr.spec.host} that use this setting fail (TLS is never replaced by plaintext)`,
            }),
          );
        };
        for (const field of Object.keys(FIELDS) as TlsFileField[]) {
          const path = tls[field];
          if (path === undefined || path === '') continue;
          if ((field === 'clientCertificate' || field === 'privateKey') && tls.mode !== 'MUTUAL') continue;
          if (tls.mode === 'ISTIO_MUTUAL' || tls.mode === 'DISABLE' || tls.mode === undefined) continue;
          const f = this.#read(field, path);
          if (!f.ok) finding(field, f.error);
        }
        if (tls.mode === 'MUTUAL' && tls.clientCertificate && tls.privateKey) {
          const pair = this.pair(tls.clientCertificate, tls.privateKey);
          if (!pair.ok && this.get('clientCertificate', tls.clientCertificate).ok && this.get('privateKey', tls.privateKey).ok) finding('privateKey', pair.error);
        }
      }
    }
    this.issues = Object.freeze(issues);
  }

  #read(field: TlsFileField, path: string): TlsFile {
    const key = `${field}\0${path}`;
    let f = this.#files.get(key);
    if (f === undefined) {
      f = check(field, path);
      this.#files.set(key, f);
    }
    return f;
  }

  readonly #pairs = new Map<string, TlsFile>();

  /**
   * A MUTUAL block's client certificate and key, checked together (read as {@link get} reads
   * them): `ok` with the certificate's PEM, or why they cannot be used, naming the file(s).
   */
  pair(certPath: string, keyPath: string): TlsFile {
    const k = `${certPath}\0${keyPath}`;
    let f = this.#pairs.get(k);
    if (f === undefined) {
      const cert = this.#read('clientCertificate', certPath);
      const key = this.#read('privateKey', keyPath);
      if (!cert.ok) f = cert;
      else if (!key.ok) f = key;
      else {
        const error = checkPair(certPath, cert.pem, keyPath, key.pem);
        f = error === undefined ? cert : { ok: false, error };
      }
      this.#pairs.set(k, f);
    }
    return f;
  }

  /** The file as read with this config (read now if no rule of the config named it, e.g. a test's own settings). */
  get(field: TlsFileField, path: string): TlsFile {
    return this.#read(field, path);
  }
}
