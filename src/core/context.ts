/**
 * The mesh context of the code running now: one async-context store (`AsyncLocalStorage`) for
 * what a request brings with it — its deadline, its trace context, the peer that called (mTLS
 * identity) and the end user (JWT request principal). The server side starts it when a request
 * is admitted and runs the app's handler inside it; outbound calls made inside read it (the
 * deadline bounds them; telemetry continues the trace). {@link withDeadline} starts or narrows
 * one in code.
 *
 * @module
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import { InvalidArgumentError } from './errors.ts';

/**
 * The identity of the peer that called, as its mTLS certificate proves it.
 * @category Context and time
 */
export interface PeerIdentity {
  /** `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`, or '' for a plaintext peer. */
  readonly principal: string;
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The peer's address (`remote.ip`). */
  readonly address: string;
}

/**
 * Trace context carried in headers (W3C `traceparent`/`tracestate`, B3, `x-request-id`), as received.
 * @category Context and time
 */
export type TraceHeaders = Readonly<Record<string, string>>;

/**
 * What the code running now knows about the request it serves.
 * @category Context and time
 */
export interface MeshContext {
  /** Absolute deadline in `performance.now()` milliseconds; Infinity when none. */
  readonly deadline: number;
  /** Trace headers of the request served: its `x-request-id` (as received, or generated when it had none), which the calls made while serving it carry. */
  readonly trace: TraceHeaders | undefined;
  /** The calling peer's mTLS identity, when it presented one. */
  readonly peer: PeerIdentity | undefined;
  /** The end user: `iss/sub` of the verified JWT, when the request had one. */
  readonly requestPrincipal: string | undefined;
  /** The verified JWT's claims, when the request had one. */
  readonly claims: Readonly<Record<string, unknown>> | undefined;
}

const NONE: MeshContext = Object.freeze({ deadline: Number.POSITIVE_INFINITY, trace: undefined, peer: undefined, requestPrincipal: undefined, claims: undefined });

const storage = new AsyncLocalStorage<MeshContext>();

/**
 * True when this Node keeps async context in frames (`AsyncContextFrame`, Node 24's default):
 * then `storage.run` copies the whole frame (a `Map` of every store's value) twice — on the way
 * in, and again on the way out to put the previous value back — while an `AsyncResource` holds
 * the frame it was made in and puts it back on exit without copying. Checked once: with frames,
 * a store entered inside a resource's scope is gone when the scope is entered again; with the
 * older async_hooks stores it stays on the resource.
 */
const FRAMES = ((): boolean => {
  const probe = new AsyncLocalStorage<number>();
  const r = new AsyncResource('meshlet.probe');
  r.runInAsyncScope(() => probe.enterWith(1));
  return r.runInAsyncScope(() => probe.getStore()) === undefined;
})();

/**
 * True when async context lives in frames (Node 24's default): an `AsyncResource` scope then
 * restores every store on exit, so a store entered inside it needs no `run` of its own.
 */
export function asyncContextFrames(): boolean {
  return FRAMES;
}

function enterThen<A extends unknown[], T>(context: MeshContext, fn: (...args: A) => T, args: A): T {
  storage.enterWith(context);
  return fn(...args);
}

/**
 * `storage.run(context, fn, ...args)` with one frame copy instead of two where context lives in
 * frames (~70–100 ns less per call in Node 24: every served request enters one). The scope
 * restores the whole context as it was on return or throw.
 */
function runWith<A extends unknown[], T>(context: MeshContext, fn: (...args: A) => T, args: A): T {
  if (!FRAMES || storage.getStore() === context) return storage.run(context, fn, ...args);
  return new AsyncResource('meshlet.context').runInAsyncScope(enterThen<A, T>, undefined, context, fn, args);
}

function enterThen2<A, B, T>(context: MeshContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  storage.enterWith(context);
  return fn(a, b);
}

/**
 * True in the synchronous extent of {@link runInRestoringScope}, until {@link runInWholeContextLast}
 * enters a context in it (which then needs no scope of its own).
 */
let restoring = false;

function restoringThen<A, B, C, T>(fn: (a: A, b: B, c: C) => T, a: A, b: B, c: C): T {
  const was = restoring;
  restoring = true;
  try {
    return fn(a, b, c);
  } finally {
    restoring = was;
  }
}

/**
 * Runs `fn(a, b, c)` in an `AsyncResource` scope, which puts the whole async context (every
 * store) back as it was when it returns or throws — where async context lives in frames (Node
 * 24); elsewhere `fn(a, b, c)` as it is. The first whole context {@link runInWholeContextLast}
 * enters in its synchronous extent is entered in place (`enterWith`), without a scope of its
 * own: this one restores it. The tracer runs a served request's admission in one (it makes the
 * server span's OpenTelemetry context active in it), so the request's mesh context, entered at
 * the end of admission, costs one `AsyncResource` instead of two.
 * @internal
 */
export function runInRestoringScope<A, B, C, T>(fn: (a: A, b: B, c: C) => T, a: A, b: B, c: C): T {
  if (!FRAMES) return fn(a, b, c);
  return new AsyncResource('meshlet.scope').runInAsyncScope(restoringThen<A, B, C, T>, undefined, fn, a, b, c);
}

/**
 * Runs `fn(a, b)` inside `context`, a whole context (every field set, as admission makes one),
 * merged with the enclosing one as {@link joinWholeContext} merges it. Outside any context the merge
 * is `context` itself, so it is entered as it is (no copy), and the two arguments are handed on
 * without a closure or an argument list: the server adapters enter one per admitted request.
 * @internal
 */
export function runInWholeContext<A, B, T>(context: MeshContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  const outer = storage.getStore();
  const ctx = outer === undefined ? context : joinWholeContext(context);
  if (!FRAMES || outer === ctx) return storage.run(ctx, fn, a, b);
  return new AsyncResource('meshlet.context').runInAsyncScope(enterThen2<A, B, T>, undefined, ctx, fn, a, b);
}

/**
 * {@link runInWholeContext} for a caller that does nothing more after it returns — `fn(a, b)` is
 * the rest of its synchronous work, up to the end of any {@link runInRestoringScope} it runs in.
 * Inside such a scope (the first time), the context is entered in place: the scope puts the
 * previous one back when it ends, as `run` would when `fn` returns. The server adapters enter an
 * admitted request's context with it, at the end of admission.
 * @internal
 */
export function runInWholeContextLast<A, B, T>(context: MeshContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  if (!restoring) return runInWholeContext(context, fn, a, b);
  restoring = false;
  const outer = storage.getStore();
  storage.enterWith(outer === undefined ? context : joinWholeContext(context));
  return fn(a, b);
}

/**
 * The mesh context of the code running now (an empty one — no deadline, no peer — outside any).
 * @category Context and time
 */
export function currentContext(): MeshContext {
  return storage.getStore() ?? NONE;
}

/**
 * Runs `fn` inside `context`, merged with the enclosing one: the sooner deadline wins, and what
 * `context` leaves unset is inherited.
 * @category Context and time
 */
export function runInContext<T>(context: Partial<MeshContext>, fn: () => T): T {
  return runWith(joinContext(context), fn, []);
}

/**
 * `context` merged with the enclosing one, as {@link runInContext} enters it (the sooner deadline
 * wins, what `context` leaves unset is inherited), without entering it: for an adapter that
 * re-enters it around each callback of a request ({@link reenterContext}).
 */
export function joinContext(context: Partial<MeshContext>): MeshContext {
  const outer = storage.getStore() ?? NONE;
  const deadline = context.deadline !== undefined && context.deadline < outer.deadline ? context.deadline : outer.deadline;
  return {
    deadline,
    trace: context.trace ?? outer.trace,
    peer: context.peer ?? outer.peer,
    requestPrincipal: context.requestPrincipal ?? outer.requestPrincipal,
    claims: context.claims ?? outer.claims,
  };
}

/**
 * A request's whole context (as admission makes one) merged with the enclosing one: the sooner
 * deadline wins and a trace it has none of is inherited, but its peer, request principal and
 * claims are its own — unset is none, never the enclosing request's. (A request one mesh admits
 * while serving another mesh's request in the same process — or the same mesh's, in-process —
 * carries only the identities its own judgement verified.)
 * @internal
 */
export function joinWholeContext(context: MeshContext): MeshContext {
  const outer = storage.getStore() ?? NONE;
  const deadline = Math.min(context.deadline, outer.deadline);
  return { deadline, trace: context.trace ?? outer.trace, peer: context.peer, requestPrincipal: context.requestPrincipal, claims: context.claims };
}

/**
 * Runs `fn` with a deadline `timeoutMs` from now (or the enclosing deadline, if that is
 * sooner). Outbound calls made by `fn` through the mesh time out when it passes.
 * @category Context and time
 */
export function withDeadline<T>(timeoutMs: number, fn: () => T): T {
  checkDeadlineArgs('withDeadline', 'timeoutMs', timeoutMs, fn);
  return runInContext({ deadline: performance.now() + timeoutMs }, fn);
}

/** A deadline that is not a number (a string from the environment: `now + '100'` concatenates) or NaN would silently be none, or now. */
function checkDeadlineArgs(name: string, arg: string, ms: unknown, fn: unknown): void {
  if (typeof ms !== 'number' || Number.isNaN(ms)) throw new InvalidArgumentError(`${name}(${arg}, fn): ${arg} must be a number of milliseconds (Infinity for no deadline), got ${typeof ms === 'string' ? JSON.stringify(ms) : String(ms)} (${typeof ms})`);
  if (typeof fn !== 'function') throw new InvalidArgumentError(`${name}(${arg}, fn): fn must be a function, got ${typeof fn}`);
}

/**
 * Runs `fn` with an absolute deadline in `performance.now()` milliseconds.
 * @category Context and time
 */
export function withDeadlineAt<T>(at: number, fn: () => T): T {
  checkDeadlineArgs('withDeadlineAt', 'at', at, fn);
  return runInContext({ deadline: at }, fn);
}

/**
 * The deadline of the current async context, in `performance.now()` milliseconds, or Infinity.
 * @category Context and time
 */
export function currentDeadline(): number {
  const s = storage.getStore();
  return s === undefined ? Number.POSITIVE_INFINITY : s.deadline;
}

/**
 * Runs `fn(...args)` with exactly `context` as the current mesh context (no merging): for
 * adapters re-entering a request's context from events that arrive outside it.
 * @internal
 */
export function reenterContext<A extends unknown[], T>(context: MeshContext, fn: (...args: A) => T, ...args: A): T {
  return runWith(context, fn, args);
}

/**
 * Runs `fn` outside any mesh context (no deadline, no trace, no peer), as work the mesh does on
 * its own behalf — an access log's Export calls — must run whichever request made it due.
 * @internal
 */
export function outsideContext<T>(fn: () => T): T {
  return storage.exit(fn);
}
