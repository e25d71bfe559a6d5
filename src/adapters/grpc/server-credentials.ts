/**
 * `mesh.grpc.serverCredentials()`: grpc-js `ServerCredentials` for `server.bindAsync` that serve
 * the mesh's mTLS — the workload certificate, a client certificate required and its chain
 * verified against the mesh's trust bundle in the handshake (a plaintext client or one without a
 * mesh certificate never gets a connection), the certificate swapped on rotation — and carry an
 * interceptor that checks, per call, that the certificate proves one SPIFFE identity of this
 * mesh's trust domain, and that the port's PeerAuthentication mode allows mTLS.
 *
 * A grpc-js listener is TLS or plaintext, never both: these credentials serve STRICT (and the mTLS
 * half of PERMISSIVE). A port that must take plaintext too (PERMISSIVE, DISABLE) is bound with
 * `mesh.grpc.bind(server, address)` (server-listen.ts), which serves both on one port.
 *
 * @module
 */
import type { ServerCredentials, ServerInterceptingCall, ServerInterceptingCallInterface, ServerInterceptor, ServerMethodDefinition } from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import type { GrpcJs } from './grpc-js.ts';
import type { GrpcPeers } from './server-peer.ts';
import { plainAddress } from '../server/peer.ts';

/** Why a call on an mTLS listener is refused, or undefined when its connection proved a mesh identity the port's mode accepts. */
function refusal(peers: GrpcPeers, call: ServerInterceptingCallInterface): string | undefined {
  const ci = call.getConnectionInfo();
  const port = ci.localPort ?? 0;
  const mode = peers.tls.modeFor(port);
  if (mode === 'DISABLE') return `PeerAuthentication DISABLE on port ${port}: plaintext only, and this listener serves mTLS (mesh.grpc.serverCredentials()); bind the port with mesh.grpc.bind(server, address)`;
  const { cert } = peers.certificateOf(call);
  if (cert === undefined) return 'no verified client certificate';
  const v = peers.verdictOf(cert, plainAddress(ci.remoteAddress));
  return v.ok ? undefined : v.reason;
}

/** The credentials' own interceptor: a call whose connection proves no mesh identity ends UNAVAILABLE before anything else runs. */
function peerCheck(g: GrpcJs, peers: GrpcPeers, debug: ((m: string) => void) | undefined): ServerInterceptor {
  return (_method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface): ServerInterceptingCall =>
    new g.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, go) => {
            const why = refusal(peers, call);
            if (why === undefined) {
              go(md);
              return;
            }
            debug?.(`meshlet: refused a gRPC call from ${call.getPeer()}: ${why}`);
            call.sendStatus({ code: g.status.UNAVAILABLE, details: `connection refused by PeerAuthentication: ${why}`, metadata: null });
          },
        }),
    });
}

/**
 * The mesh's server credentials. grpc-js's watchers get the new secure context when the workload
 * certificate rotates; without a usable certificate grpc-js refuses every connection (fail closed).
 */
export function meshServerCredentials(g: GrpcJs, peers: GrpcPeers, debug?: (m: string) => void): ServerCredentials {
  const contextOf = (): SecureContextOptions | undefined => peers.tls.context?.options;
  const interceptors = [peerCheck(g, peers, debug)];
  class MeshServerCredentials extends g.ServerCredentials {
    #unsubscribe: (() => void) | undefined;
    #watchers = 0;

    constructor() {
      // Client certificates required and verified against the trust bundle in the handshake.
      super({ requestCert: true, rejectUnauthorized: true }, contextOf());
    }

    override _addWatcher(watcher: Parameters<ServerCredentials['_addWatcher']>[0]): void {
      super._addWatcher(watcher);
      if (this.#watchers++ === 0) {
        this.#unsubscribe = peers.tls.onCredentials(() => this.updateSecureContextOptions(contextOf() ?? null));
        // Credentials that came between construction and the bind.
        const now = contextOf();
        if (now !== undefined && now !== this._getSecureContextOptions()) this.updateSecureContextOptions(now);
      }
    }

    override _removeWatcher(watcher: Parameters<ServerCredentials['_removeWatcher']>[0]): void {
      super._removeWatcher(watcher);
      if (--this.#watchers === 0) {
        this.#unsubscribe?.();
        this.#unsubscribe = undefined;
      }
    }

    override _getInterceptors(): ServerInterceptor[] {
      return interceptors;
    }

    _equals(other: ServerCredentials): boolean {
      return other === this;
    }
  }
  return new MeshServerCredentials();
}
