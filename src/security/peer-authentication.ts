/**
 * The PeerAuthentication that applies to a workload (composed in `config/peer-authentication.ts`,
 * where the cluster compile reads it too: a remote network's endpoint goes through its gateway
 * only when mTLS).
 *
 * @module
 */
export { composePeerAuthentication, type EffectivePeerAuthentication, type MtlsMode, mtlsModeForPort, type PeerAuthenticationTarget } from '../config/peer-authentication.ts';
