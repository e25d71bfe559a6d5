/**
 * The mesh's error for an attempt that failed before response headers, worded as Envoy's local
 * reply with Envoy's response flag (the retry layer's final answer, and a passthrough call's).
 *
 * @module
 */
import { MeshletError, type MeshletErrorCode } from '../core/errors.ts';
import type { Exchange } from '../core/exchange.ts';
import type { FailureKind } from '../core/outcome.ts';
import { tlsFailureReason } from '../core/tls-failure.ts';

const RESET_TEXT: Record<FailureKind, string> = {
  // Envoy's codec client: a connection closed before it was up is a remote (or local) connection failure.
  'connect-failure': 'remote connection failure',
  reset: 'connection termination',
  'remote-reset': 'remote reset',
  'refused-stream': 'remote refused stream reset',
  'per-try-timeout': 'per try timeout',
  overflow: 'overflow',
  protocol: 'protocol error',
  cancelled: 'cancelled',
  local: 'local',
};

const FLAG_FOR: Record<FailureKind, string> = {
  'connect-failure': 'UF',
  reset: 'UC',
  'remote-reset': 'UR',
  'refused-stream': 'UR',
  'per-try-timeout': 'UT',
  overflow: 'UO',
  protocol: 'UPE',
  cancelled: 'UR',
  local: 'UR',
};

const CODE_FOR: Record<FailureKind, MeshletErrorCode> = {
  'connect-failure': 'MESHLET_ERR_UPSTREAM_CONNECT',
  reset: 'MESHLET_ERR_UPSTREAM_RESET',
  'remote-reset': 'MESHLET_ERR_UPSTREAM_RESET',
  'refused-stream': 'MESHLET_ERR_UPSTREAM_RESET',
  'per-try-timeout': 'MESHLET_ERR_TIMEOUT',
  overflow: 'MESHLET_ERR_OVERLOADED',
  protocol: 'MESHLET_ERR_UPSTREAM_PROTOCOL',
  cancelled: 'MESHLET_ERR_UPSTREAM_RESET',
  local: 'MESHLET_ERR_INVALID_ARG',
};

/**
 * Envoy's transport failure reason of a TCP connect that failed (Network::ConnectionImpl: the
 * socket's error in words): `delayed connect error: Connection refused` for a connect the peer
 * refused, timed out or could not route to, `immediate connect error: …` for one the kernel
 * refused at once. Undefined for other failures (a TLS one has its own reason).
 */
const CONNECT_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'delayed connect error: Connection refused',
  ETIMEDOUT: 'delayed connect error: Connection timed out',
  EHOSTUNREACH: 'delayed connect error: No route to host',
  ENETUNREACH: 'immediate connect error: Network is unreachable',
};

const CONNECT_ERROR_TEXT = /\b(ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)\b/;

/** A connect the pool's connect timeout ended (`connectTimeout`), rather than a socket error. */
const TIMED_OUT = { timedOut: true } as const;

/**
 * What a failed connect's error (or a cause of it, up to four deep) says: the pool's connect
 * timeout (undici's ConnectTimeoutError, the gRPC connection's own words) — which Envoy's pool
 * fails with PoolFailureReason::Timeout and its router words as the reset reason
 * `connection timeout` (router_test.cc PoolFailureDueToConnectTimeout) — else the socket error as
 * Envoy's transport failure reason (grpc-js words it in its text: `connect ECONNREFUSED …`).
 */
function connectFailure(cause: unknown): typeof TIMED_OUT | { readonly timedOut: false; readonly transport: string | undefined } {
  for (let e = cause, i = 0; e !== null && typeof e === 'object' && i < 4; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    const text = (e as { details?: unknown }).details ?? (e as { message?: unknown }).message;
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || (typeof text === 'string' && text.includes('connect timeout: not connected within'))) return TIMED_OUT;
    if (typeof code === 'string' && Object.hasOwn(CONNECT_ERRORS, code)) return { timedOut: false, transport: CONNECT_ERRORS[code] };
    const m = typeof text === 'string' ? CONNECT_ERROR_TEXT.exec(text) : null;
    if (m !== null) return { timedOut: false, transport: CONNECT_ERRORS[m[1] as string] };
  }
  return { timedOut: false, transport: undefined };
}

/**
 * The mesh's error for an attempt that failed the way `failure` says, worded as Envoy's local
 * reply (`upstream connect error or disconnect/reset before headers. reset reason: …`, a TLS
 * failure with its transport failure reason), with Envoy's flag, after `URX` when retries ran out
 * (`URX,UF`: Envoy lists flags in the order they were set, and its router sets URX when the retry
 * state refuses the retry, before onUpstreamAbort sets the reset's flag).
 */
export function upstreamFailure(ex: Exchange, failure: FailureKind, cause: Error, retried: boolean, exhausted: boolean): MeshletError {
  const connect = failure === 'connect-failure' ? connectFailure(cause) : undefined;
  const reason = connect?.timedOut === true ? 'connection timeout' : RESET_TEXT[failure];
  const msg =
    failure === 'per-try-timeout'
      ? 'upstream request timeout'
      : `upstream connect error or disconnect/reset before headers. ${retried ? 'retried and the latest reset reason' : 'reset reason'}: ${reason}`;
  // A TLS failure is a connect failure with a transport failure reason, as Envoy words it.
  const tls = failure === 'connect-failure' || failure === 'reset' ? tlsFailureReason(cause) : undefined;
  if (tls !== undefined) {
    return new MeshletError('MESHLET_ERR_UPSTREAM_TLS', `${msg.replace(/: [a-z ]+$/, ': remote connection failure')}, transport failure reason: TLS error: ${tls}`, { ...ex.errorContext(), cause, flags: exhausted ? 'URX,UF' : 'UF' });
  }
  const tfr = connect?.timedOut === false ? connect.transport : undefined;
  if (tfr !== undefined) return new MeshletError(CODE_FOR[failure], `${msg}, transport failure reason: ${tfr}`, { ...ex.errorContext(), cause, flags: exhausted ? 'URX,UF' : 'UF' });
  // Envoy's streamResetReasonToResponseFlag: a connection that closed is UC, a stream the upstream reset is UR.
  const flag = FLAG_FOR[failure];
  return new MeshletError(CODE_FOR[failure], msg, { ...ex.errorContext(), cause, flags: exhausted ? `URX,${flag}` : flag });
}

/**
 * An upstream that failed after the response started (its connection closed, its HTTP/2 stream
 * reset, its framing broken mid-body): the caller's body fails with the transport's error, as
 * Envoy resets the downstream stream, and the call gets Envoy's flag for the reset reason (UC,
 * UR, UPE) in every report of it — its details are `upstream_reset_after_response_started{…}`.
 * A cancellation, a timeout or the caller's own failure adds nothing.
 */
export function flagLateReset(ex: Exchange, failure: FailureKind): void {
  if (failure === 'reset' || failure === 'remote-reset' || failure === 'refused-stream' || failure === 'protocol') ex.flag(FLAG_FOR[failure]);
}
