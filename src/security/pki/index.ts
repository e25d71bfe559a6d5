/**
 * meshlet's X.509 layer: key pairs, CSRs, and a CA that issues SPIFFE workload certificates as
 * Istio's CA does. Node's `crypto` makes keys, signs and verifies; `asn1js` encodes the DER.
 *
 * @module
 */
export { CertificateAuthority, CLOCK_SKEW_GRACE_MS, type CreateRootOptions, DEFAULT_ROOT_TTL_MS, type IssuedCertificate, type IssuedServingCertificate, type LoadCaOptions, type ServingCertificateOptions, type SignOptions, type WallClock } from './ca.ts';
export { type CertificateInfo, certificateInfo, parseCertificate } from './certificate.ts';
export { createCsr, verifyCsr } from './csr.ts';
export { generateKeyPair, type KeyAlgorithm, type KeyPairPem, privateKeyFrom } from './keys.ts';
export { parsePemBundle, toPem } from './pem.ts';
export { DEV_CA_FILES, type DevCa, type DevCaInitOptions, finalizeDevCaRotation, initDevCa, loadDevCa, rotateDevCa, trustDomainOf } from './dev-ca.ts';
export { chainProblem } from './chain.ts';
