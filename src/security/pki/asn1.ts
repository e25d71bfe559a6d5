/**
 * The X.509 and PKCS#10 structures meshlet writes and reads, built from `asn1js`'s ASN.1 types
 * (which do all the DER encoding and decoding). `asn1js` is used rather than the
 * `@peculiar/asn1-*` schema packages or `pkijs` because those install globals when imported
 * (tslib's `__extends`…, pkijs's engine registry), and a library must not patch globals.
 *
 * @module
 */
import { createHash, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { OID } from './oids.ts';

/** Context-specific tag class in asn1js's numbering. */
const CONTEXT = 3;

/** Parses one DER value that must fill `der` exactly; throws `${what} is not valid DER`. */
export function parseDer(der: Uint8Array, what: string): asn1js.AsnType {
  const view = new Uint8Array(der.buffer, der.byteOffset, der.byteLength);
  const parsed = asn1js.fromBER(view);
  if (parsed.offset === -1 || parsed.offset !== der.byteLength) throw new Error(`${what} is not valid DER${parsed.result.error ? ` (${parsed.result.error})` : ''}`);
  return parsed.result;
}

/** The DER encoding of an asn1js value. */
export function encode(v: asn1js.AsnType): Buffer {
  return Buffer.from(v.toBER(false));
}

/** The children of a SEQUENCE/SET (or a constructed tagged value); throws naming `what` otherwise. */
export function children(v: asn1js.AsnType | undefined, what: string): asn1js.AsnType[] {
  if (v === undefined || !(v instanceof asn1js.Sequence || v instanceof asn1js.Set || v instanceof asn1js.Constructed)) throw new Error(`${what} is not a SEQUENCE`);
  return v.valueBlock.value as asn1js.AsnType[];
}

/** The exact DER bytes a parsed value was decoded from. */
export function rawOf(v: asn1js.AsnType): Buffer {
  const view = v.valueBeforeDecodeView;
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** Re-parses DER bytes so they can be embedded in a new structure unchanged. */
export function embed(der: Uint8Array, what: string): asn1js.AsnType {
  return parseDer(der, what);
}

function isPrintable(s: string): boolean {
  return /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s);
}

/**
 * A distinguished name. Values are PrintableString when they can be, else UTF8String, as Go's
 * `crypto/x509` writes them (so a name meshlet writes compares equal to one Istio wrote).
 */
export function name(attrs: readonly { readonly oid: string; readonly value: string }[]): asn1js.Sequence {
  return new asn1js.Sequence({
    value: attrs.map(
      (a) =>
        new asn1js.Set({
          value: [
            new asn1js.Sequence({
              value: [new asn1js.ObjectIdentifier({ value: a.oid }), isPrintable(a.value) ? new asn1js.PrintableString({ value: a.value }) : new asn1js.Utf8String({ value: a.value })],
            }),
          ],
        }),
    ),
  });
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds. */
export function time(ms: number): asn1js.UTCTime | asn1js.GeneralizedTime {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  return d.getUTCFullYear() < 2050 ? new asn1js.UTCTime({ valueDate: d }) : new asn1js.GeneralizedTime({ valueDate: d });
}

/** One extension: `SEQUENCE { extnID, critical (only when TRUE), extnValue OCTET STRING }`. */
export function extension(oid: string, critical: boolean, value: asn1js.AsnType): asn1js.Sequence {
  const parts: asn1js.AsnType[] = [new asn1js.ObjectIdentifier({ value: oid })];
  if (critical) parts.push(new asn1js.Boolean({ value: true }));
  parts.push(new asn1js.OctetString({ valueHex: encode(value) }));
  return new asn1js.Sequence({ value: parts });
}

/** A KeyUsage BIT STRING from bit numbers (0 = digitalSignature, 2 = keyEncipherment, 5 = keyCertSign, 6 = cRLSign). */
export function keyUsageBits(bits: readonly number[]): asn1js.BitString {
  const highest = Math.max(...bits);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const b of bits) bytes[b >> 3] = (bytes[b >> 3] as number) | (0x80 >> (b & 7));
  const unusedBits = 7 - (highest & 7);
  return new asn1js.BitString({ valueHex: bytes, unusedBits });
}

/** `SubjectAltName` holding URIs only (GeneralName `[6] IA5String`). */
export function uriSan(uris: readonly string[]): asn1js.Sequence {
  return new asn1js.Sequence({
    value: uris.map((u) => new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 6 }, valueHex: Buffer.from(u, 'ascii') })),
  });
}

/** `SubjectAltName` of DNS names (GeneralName `[2] IA5String`) and IP addresses (`[7] OCTET STRING`: 4 or 16 bytes). */
export function serverSan(dnsNames: readonly string[], ipAddresses: readonly Uint8Array[]): asn1js.Sequence {
  return new asn1js.Sequence({
    value: [
      ...dnsNames.map((d) => new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 2 }, valueHex: Buffer.from(d, 'ascii') })),
      ...ipAddresses.map((ip) => new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 7 }, valueHex: ip })),
    ],
  });
}

/** `AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }`. */
export function authorityKeyIdentifier(keyId: Uint8Array): asn1js.Sequence {
  return new asn1js.Sequence({ value: [new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: 0 }, valueHex: keyId })] });
}

/** `BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, … }`. */
export function basicConstraints(ca: boolean): asn1js.Sequence {
  return new asn1js.Sequence({ value: ca ? [new asn1js.Boolean({ value: true })] : [] });
}

/** `ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId`. */
export function extKeyUsage(oids: readonly string[]): asn1js.Sequence {
  return new asn1js.Sequence({ value: oids.map((o) => new asn1js.ObjectIdentifier({ value: o })) });
}

/** The SubjectPublicKeyInfo of a key (Node exports it as DER), ready to embed. */
export function subjectPublicKeyInfo(key: KeyObject): asn1js.AsnType {
  return embed(key.export({ type: 'spki', format: 'der' }), 'the public key');
}

/**
 * RFC 5280 §4.2.1.2 method 1: the SHA-1 of the subjectPublicKey BIT STRING's bits (what Go and
 * OpenSSL put in a CA's subjectKeyIdentifier).
 */
export function keyIdentifier(key: KeyObject): Buffer {
  const spki = children(parseDer(key.export({ type: 'spki', format: 'der' }), 'the public key'), 'the public key');
  const bits = spki[1];
  if (!(bits instanceof asn1js.BitString)) throw new Error('the public key has no subjectPublicKey BIT STRING');
  return createHash('sha1').update(bits.valueBlock.valueHexView).digest();
}

/** How a key signs: the AlgorithmIdentifier to write, and the digest for `crypto.sign`. */
export interface SignatureAlgorithm {
  readonly identifier: asn1js.Sequence;
  readonly digest: string | null;
}

/**
 * The signature algorithm for a private key, as Go's `crypto/x509` picks it: ECDSA P-256 →
 * ecdsa-with-SHA256, P-384 → SHA384, P-521 → SHA512; RSA → sha256WithRSAEncryption; Ed25519.
 */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const alg = (oid: string, withNull: boolean): asn1js.Sequence => new asn1js.Sequence({ value: withNull ? [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Null()] : [new asn1js.ObjectIdentifier({ value: oid })] });
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'secp384r1') return { identifier: alg(OID.ecdsaWithSHA384, false), digest: 'sha384' };
      if (curve === 'secp521r1') return { identifier: alg(OID.ecdsaWithSHA512, false), digest: 'sha512' };
      if (curve === 'prime256v1') return { identifier: alg(OID.ecdsaWithSHA256, false), digest: 'sha256' };
      throw new Error(`an EC key on curve ${curve ?? '(unknown)'} cannot sign certificates (P-256, P-384 and P-521 can)`);
    }
    case 'rsa':
      return { identifier: alg(OID.sha256WithRSAEncryption, true), digest: 'sha256' };
    case 'ed25519':
      return { identifier: alg(OID.ed25519, false), digest: null };
    default:
      throw new Error(`a ${key.asymmetricKeyType ?? 'secret'} key cannot sign certificates (ECDSA, RSA and Ed25519 keys can)`);
  }
}

/** The digest `crypto.verify` needs for a signature AlgorithmIdentifier OID; throws for one meshlet does not accept. */
export function digestOfSignatureOid(oid: string, what: string): string | null {
  switch (oid) {
    case OID.ecdsaWithSHA256:
    case OID.sha256WithRSAEncryption:
      return 'sha256';
    case OID.ecdsaWithSHA384:
    case OID.sha384WithRSAEncryption:
      return 'sha384';
    case OID.ecdsaWithSHA512:
    case OID.sha512WithRSAEncryption:
      return 'sha512';
    case OID.ed25519:
      return null;
    default:
      throw new Error(`${what} is signed with algorithm ${oid}, which meshlet does not accept (ECDSA or RSA with SHA-256/384/512, Ed25519)`);
  }
}

/** The dotted OID of an AlgorithmIdentifier SEQUENCE. */
export function algorithmOid(v: asn1js.AsnType | undefined, what: string): string {
  const id = children(v, what)[0];
  if (!(id instanceof asn1js.ObjectIdentifier)) throw new Error(`${what} has no algorithm OID`);
  return id.valueBlock.toString();
}

/** The bytes of a BIT STRING with no unused bits (a signature). */
export function bitStringBytes(v: asn1js.AsnType | undefined, what: string): Buffer {
  if (!(v instanceof asn1js.BitString)) throw new Error(`${what} is not a BIT STRING`);
  const view = v.valueBlock.valueHexView;
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

export { asn1js };
