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

/**
 * Parses a PEM CSR and checks its signature with the public key it carries; throws with what
 * is wrong (not PEM, not DER, a signature that does not verify). Nothing else in the request
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
