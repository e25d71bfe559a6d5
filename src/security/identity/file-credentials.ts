/**
 * Reading a workload's certificate, key and trust bundle from files, as cert-manager
 * (csi-driver-spiffe, or a Secret mounted as a volume: `tls.crt`, `tls.key`, `ca.crt`) and SPIRE's
 * spiffe-helper (`svid.pem`, `svid_key.pem`, `svid_bundle.pem`) write them, and checking them the
 * way a TLS peer will before they are used.
 *
 * @module
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { chainProblem } from '../pki/chain.ts';
import { readAllInOrder } from '../pki/read-all.ts';
import { parseCertificate } from '../pki/certificate.ts';
import { privateKeyFrom } from '../pki/keys.ts';
import { parsePemBundle } from '../pki/pem.ts';
import type { CredentialUpdate } from './credentials.ts';
import { isoTime } from './source.ts';
import { SPIFFE_PREFIX, uriSans } from './spiffe.ts';

/**
 * The three files of a workload's credentials.
 * @category Identity
 */
export interface CredentialFiles {
  /** PEM: the workload's certificate, then any intermediates (`tls.crt`, `svid.pem`). */
  readonly certFile: string;
  /** PEM: the certificate's private key (`tls.key`, `svid_key.pem`). */
  readonly keyFile: string;
  /** PEM: the trusted roots (`ca.crt`, `svid_bundle.pem`). */
  readonly caFile: string;
}

/** Why credential files cannot be used; `file` is the file at fault. */
export class CredentialFileError extends Error {
  readonly file: string;
  /** `key-mismatch` may be a pair read half-updated (certificate new, key old): worth reading again once the files settle. */
  readonly reason: 'missing' | 'unreadable' | 'not-pem' | 'key-mismatch' | 'no-identity' | 'expired' | 'untrusted';
  constructor(file: string, reason: CredentialFileError['reason'], message: string) {
    super(`${file}: ${message}`);
    this.name = 'CredentialFileError';
    this.file = file;
    this.reason = reason;
  }
}

async function read(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CredentialFileError(file, 'missing', 'missing (no such file)');
    throw new CredentialFileError(file, 'unreadable', `cannot be read: ${(e as Error).message}`);
  }
}

function certificates(file: string, text: string, what: string): X509Certificate[] {
  let pems: string[];
  try {
    pems = parsePemBundle(text);
  } catch (e) {
    throw new CredentialFileError(file, 'not-pem', (e as Error).message);
  }
  if (pems.length === 0) throw new CredentialFileError(file, 'not-pem', `not PEM: no "-----BEGIN CERTIFICATE-----" block (${what})`);
  return pems.map((p, i) => {
    try {
      return parseCertificate(p, `certificate ${i + 1}`);
    } catch (e) {
      throw new CredentialFileError(file, 'not-pem', (e as Error).message);
    }
  });
}

/**
 * Reads and checks credential files: each exists and is PEM, the key is the certificate's, the
 * certificate names exactly one SPIFFE ID, is not a CA certificate, is not expired at `now` (epoch ms), and chains to a
 * root in `caFile`. Throws a {@link CredentialFileError} naming the file and what is wrong.
 * @category Identity
 */
export async function readCredentialFiles(files: CredentialFiles, now: number): Promise<CredentialUpdate> {
  const [certText, keyText, caText] = await readAllInOrder<[string, string, string]>([read(files.certFile), read(files.keyFile), read(files.caFile)]);
  const chain = certificates(files.certFile, certText, 'the workload certificate');
  const leaf = chain[0] as X509Certificate;
  let key: KeyObject;
  try {
    key = privateKeyFrom(keyText, 'the key');
  } catch (e) {
    throw new CredentialFileError(files.keyFile, 'not-pem', (e as Error).message.replace(/^the key /, ''));
  }
  if (!leaf.checkPrivateKey(key)) throw new CredentialFileError(files.keyFile, 'key-mismatch', `the private key does not match the certificate in ${files.certFile}`);
  const spiffe = uriSans(leaf.subjectAltName).filter((u) => u.startsWith(SPIFFE_PREFIX));
  if (spiffe.length === 0) throw new CredentialFileError(files.certFile, 'no-identity', `the certificate has no SPIFFE URI SAN (spiffe://<trust domain>/ns/<namespace>/sa/<service account>); SANs: ${leaf.subjectAltName ?? 'none'}`);
  if (spiffe.length > 1) throw new CredentialFileError(files.certFile, 'no-identity', `the certificate has ${spiffe.length} SPIFFE URI SANs (${spiffe.join(', ')}); a workload certificate has exactly one`);
  // An X.509-SVID is never a CA certificate: every peer refuses one (its holder could sign any identity).
  if (leaf.ca) throw new CredentialFileError(files.certFile, 'no-identity', 'the certificate is a CA certificate (CA:TRUE), not a workload certificate: peers refuse it');
  const notAfter = leaf.validToDate.getTime();
  if (notAfter <= now) throw new CredentialFileError(files.certFile, 'expired', `the certificate expired at ${isoTime(notAfter)}`);
  const roots = certificates(files.caFile, caText, 'the trusted roots');
  // A root appended to the chain file is dropped from what is sent; peers have their own roots.
  const intermediates = chain.slice(1).filter((c) => !(c.checkIssued(c) && c.verify(c.publicKey)));
  const problem = chainProblem(leaf, intermediates, roots, now);
  if (problem !== undefined) throw new CredentialFileError(files.certFile, problem.includes('expired') ? 'expired' : 'untrusted', `${problem} (roots from ${files.caFile})`);
  return {
    certChain: [leaf, ...intermediates].map((c) => c.toString()).join(''),
    privateKey: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    trustBundle: roots.map((r) => r.toString()).join(''),
    spiffeId: spiffe[0] as string,
    notBefore: leaf.validFromDate.getTime(),
    notAfter,
  };
}
