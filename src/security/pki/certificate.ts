/**
 * Writing X.509 v3 certificates (RFC 5280) and reading what meshlet needs from them.
 *
 * @module
 */
import { type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { SPIFFE_PREFIX, uriSans } from '../identity/spiffe.ts';
import { asn1js, children, encode, parseDer, rawOf, signatureAlgorithmFor, subjectPublicKeyInfo, time } from './asn1.ts';
import { OID } from './oids.ts';
import { derOf, toPem } from './pem.ts';

/** What goes into a certificate; the issuer's key signs it. */
export interface CertificateTemplate {
  /** The issuer's distinguished name (for a self-signed certificate, the subject). */
  readonly issuer: asn1js.AsnType;
  readonly subject: asn1js.AsnType;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly publicKey: KeyObject;
  readonly extensions: readonly asn1js.AsnType[];
}

/** A random positive serial below 2^128, as Istio's `genSerialNum` draws it. */
export function randomSerial(): bigint {
  for (;;) {
    const n = BigInt(`0x${randomBytes(16).toString('hex')}`);
    if (n > 0n) return n;
  }
}

/** Signs the template with `signerKey`; returns the certificate as PEM. */
export function signCertificate(t: CertificateTemplate, signerKey: KeyObject): string {
  const alg = signatureAlgorithmFor(signerKey);
  const tbs = new asn1js.Sequence({
    value: [
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [new asn1js.Integer({ value: 2 })] }),
      asn1js.Integer.fromBigInt(randomSerial()),
      alg.identifier,
      t.issuer,
      new asn1js.Sequence({ value: [time(t.notBefore), time(t.notAfter)] }),
      t.subject,
      subjectPublicKeyInfo(t.publicKey),
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 3 }, value: [new asn1js.Sequence({ value: [...t.extensions] })] }),
    ],
  });
  const tbsDer = encode(tbs);
  const signature = sign(alg.digest, tbsDer, signerKey);
  const cert = new asn1js.Sequence({ value: [parseDer(tbsDer, 'the certificate'), signatureAlgorithmFor(signerKey).identifier, new asn1js.BitString({ valueHex: signature })] });
  return toPem('CERTIFICATE', encode(cert));
}

/** The parts of a certificate a CA reuses when it signs with it: its subject as DER, its subjectKeyIdentifier. */
export interface IssuerParts {
  readonly subjectDer: Buffer;
  readonly subjectKeyId: Buffer | undefined;
}

/** Reads the subject (exact bytes) and the subjectKeyIdentifier of a PEM certificate. */
export function issuerParts(certPem: string, what: string): IssuerParts {
  const top = children(parseDer(derOf(certPem, 'CERTIFICATE', what), what), what);
  const tbs = children(top[0], `${what}'s TBSCertificate`);
  const first = tbs[0];
  const off = first instanceof asn1js.Constructed && first.idBlock.tagClass === 3 && first.idBlock.tagNumber === 0 ? 1 : 0;
  const subject = tbs[off + 4];
  if (subject === undefined) throw new Error(`${what} has no subject`);
  let subjectKeyId: Buffer | undefined;
  for (const field of tbs.slice(off + 6)) {
    if (!(field instanceof asn1js.Constructed) || field.idBlock.tagClass !== 3 || field.idBlock.tagNumber !== 3) continue;
    for (const ext of children(children(field, `${what}'s extensions`)[0], `${what}'s extensions`)) {
      const parts = children(ext, `${what}'s extension`);
      const id = parts[0];
      if (!(id instanceof asn1js.ObjectIdentifier) || id.valueBlock.toString() !== OID.subjectKeyIdentifier) continue;
      const value = parts[parts.length - 1];
      if (!(value instanceof asn1js.OctetString)) continue;
      const inner = parseDer(value.valueBlock.valueHexView, `${what}'s subjectKeyIdentifier`);
      if (inner instanceof asn1js.OctetString) subjectKeyId = Buffer.from(inner.valueBlock.valueHexView);
    }
  }
  return { subjectDer: rawOf(subject), subjectKeyId };
}

/**
 * What meshlet shows and checks about a certificate.
 * @category Identity
 */
export interface CertificateInfo {
  /** The one SPIFFE URI SAN, if the certificate has exactly one. */
  readonly spiffeId?: string;
  /** Validity, epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
  /** Serial number, upper-case hex as OpenSSL prints it. */
  readonly serial: string;
  /** Subject and issuer distinguished names, as Node prints them (`O=cluster.local`), '' when empty. */
  readonly subject: string;
  readonly issuer: string;
  /** basicConstraints CA:TRUE. */
  readonly isCa: boolean;
  /** SHA-256 fingerprint, `AB:CD:…`. */
  readonly fingerprint: string;
}

/** Parses a PEM certificate with Node's `X509Certificate`; throws `${what} is not …` naming the problem. */
export function parseCertificate(pem: string, what = 'the certificate'): X509Certificate {
  const der = derOf(pem, 'CERTIFICATE', what);
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new Error(`${what} is not an X.509 certificate: ${(e as Error).message}`);
  }
}

/**
 * The identity, validity and names of the first certificate in `pem`.
 * @category Identity
 */
export function certificateInfo(pem: string): CertificateInfo {
  const cert = parseCertificate(pem);
  const spiffe = uriSans(cert.subjectAltName).filter((u) => u.startsWith(SPIFFE_PREFIX));
  return {
    ...(spiffe.length === 1 ? { spiffeId: spiffe[0] as string } : {}),
    notBefore: cert.validFromDate.getTime(),
    notAfter: cert.validToDate.getTime(),
    serial: cert.serialNumber.toUpperCase(),
    subject: (cert.subject ?? '').replace(/\n/g, ', '),
    issuer: (cert.issuer ?? '').replace(/\n/g, ', '),
    isCa: cert.ca,
    fingerprint: cert.fingerprint256,
  };
}
