/**
 * Key pairs, made by Node's `crypto`.
 *
 * @module
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

/**
 * The key algorithms meshlet generates: ECDSA on P-256 (Istio's default for workloads) or
 * RSA with a 2048-bit modulus.
 * @category Identity
 */
export type KeyAlgorithm = 'ECDSA-P256' | 'RSA-2048';

/**
 * A key pair as PEM: the private key as PKCS#8, the public key as SubjectPublicKeyInfo.
 * @category Identity
 */
export interface KeyPairPem {
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
}

/**
 * Generates a key pair.
 * @param alg - `'ECDSA-P256'` or `'RSA-2048'`.
 *   @defaultValue `'ECDSA-P256'`
 * @category Identity
 */
export function generateKeyPair(alg: KeyAlgorithm = 'ECDSA-P256'): KeyPairPem {
  const pair =
    alg === 'ECDSA-P256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : alg === 'RSA-2048'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : (() => {
            throw new Error(`unknown key algorithm "${String(alg)}" (ECDSA-P256 or RSA-2048)`);
          })();
  return {
    privateKeyPem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKeyPem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

/** A private key from PEM (PKCS#8, PKCS#1 or SEC1); throws `${what} is not a private key: …`. */
export function privateKeyFrom(pem: string, what: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new Error(`${what} is not PEM (no "-----BEGIN … PRIVATE KEY-----" block)`);
  // PKCS#8 encrypted, or a traditional key with a `Proc-Type: 4,ENCRYPTED` header: OpenSSL asks for a passphrase there is none of.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)) throw new Error(`${what} is encrypted (a passphrase-protected key): meshlet reads unencrypted keys only (openssl pkey -in <key> -out <unencrypted key>)`);
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw new Error(`${what} is not a private key meshlet can read: ${(e as Error).message}`);
  }
}
