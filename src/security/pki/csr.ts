/**
 * Certificate signing requests (PKCS#10, RFC 2986) as Istio's agent sends them: empty subject,
 * the SPIFFE ID in a critical subjectAltName inside an extensionRequest attribute.
 *
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { algorithmOid, asn1js, bitStringBytes, children, digestOfSignatureOid, encode, extension, name, parseDer, rawOf, signatureAlgorithmFor, uriSan } from './asn1.ts';
import type { KeyPairPem } from './keys.ts';
import { OID } from './oids.ts';
import { derOf, toPem } from './pem.ts';

/**
 * Makes a CSR for `spiffeId`, signed with the key pair's private key.
 * @category Identity
 */
export async function createCsr(keys: Pick<KeyPairPem, 'privateKeyPem' | 'publicKeyPem'>, opts: { readonly spiffeId: string }): Promise<string> {
  const privateKey = createPrivateKey(keys.privateKeyPem);
  const publicKey = createPublicKey(keys.publicKeyPem);
  const info = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 0 }),
      name([]),
      parseDer(publicKey.export({ type: 'spki', format: 'der' }), 'the public key'),
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [
          new asn1js.Sequence({
            value: [
              new asn1js.ObjectIdentifier({ value: OID.extensionRequest }),
              new asn1js.Set({ value: [new asn1js.Sequence({ value: [extension(OID.subjectAltName, true, uriSan([opts.spiffeId]))] })] }),
            ],
          }),
        ],
      }),
    ],
  });
  const alg = signatureAlgorithmFor(privateKey);
  const infoDer = encode(info);
  const signature = sign(alg.digest, infoDer, privateKey);
  const csr = new asn1js.Sequence({ value: [parseDer(infoDer, 'the request'), alg.identifier, new asn1js.BitString({ valueHex: signature })] });
  return toPem('CERTIFICATE REQUEST', encode(csr));
}

/** What a CA takes from a CSR whose signature verified. */
export interface VerifiedCsr {
  /** The key the certificate will certify (the CSR proved it holds the private half). */
  readonly publicKey: KeyObject;
}

/** Curves a workload key may be on: those TLS 1.3 signs with (RFC 8446 §4.2.3) and Go's crypto/x509 (istiod) parses. */
const CURVES: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1', 'secp521r1']);
/** Smallest RSA modulus certified (NIST SP 800-131A; istio-agent makes 2048-bit keys). */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus certified: verifying with a larger one costs every peer's handshake more. */
export const MAX_RSA_BITS = 8192;

/**
 * Why a workload's public key is not certified (a key its peers could not use, or one too weak
 * for an identity), or undefined: RSA of {@link MIN_RSA_BITS}–{@link MAX_RSA_BITS} bits, ECDSA
 * on P-256, P-384 or P-521, or Ed25519. istiod refuses what Go's crypto/x509 does (curves other
 * than P-224/256/384/521, RSA below 1024 bits); meshlet also refuses RSA-1024 and P-224.
 */
export function weakKeyProblem(key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType;
  const d = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = d.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) return `an RSA key of ${bits} bits (RSA keys must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits)`;
    return undefined;
  }
  if (type === 'ec') {
    if (d.namedCurve === undefined || !CURVES.has(d.namedCurve)) return `an EC key on curve ${d.namedCurve ?? '(unnamed)'} (ECDSA keys must be on P-256, P-384 or P-521)`;
    return undefined;
  }
  if (type === 'ed25519') return undefined;
  return `a ${type ?? 'unknown'} key (RSA, ECDSA on P-256/P-384/P-521 or Ed25519 keys are certified)`;
}

/**
 * Parses a PEM CSR and checks its signature with the public key it carries; throws with what
 * is wrong (not PEM, not DER, a key {@link weakKeyProblem} refuses, a signature that does not verify). Nothing else in the request
 * (subject, requested SANs) is read: the CA decides the certificate's identity.
 */
export function verifyCsr(csrPem: string): VerifiedCsr {
  const der = derOf(csrPem, 'CERTIFICATE REQUEST', 'the CSR');
  const top = children(parseDer(der, 'the CSR'), 'the CSR');
  if (top.length !== 3) throw new Error('the CSR is not a PKCS#10 CertificationRequest (it needs request info, algorithm and signature)');
  const info = top[0] as asn1js.AsnType;
  const fields = children(info, "the CSR's request info");
  if (fields.length < 3) throw new Error("the CSR's request info is incomplete");
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: rawOf(fields[2] as asn1js.AsnType), format: 'der', type: 'spki' });
  } catch (e) {
    throw new Error(`the CSR's public key cannot be read: ${(e as Error).message}`);
  }
  const weak = weakKeyProblem(publicKey);
  if (weak !== undefined) throw new Error(`the CSR's public key is refused: ${weak}`);
  const digest = digestOfSignatureOid(algorithmOid(top[1], "the CSR's signature algorithm"), 'the CSR');
  const signature = bitStringBytes(top[2], "the CSR's signature");
  let ok: boolean;
  try {
    ok = verify(digest, rawOf(info), publicKey, signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error("the CSR's signature does not verify with its own public key (the request was altered, or not signed by the key it carries)");
  return { publicKey };
}
