import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { currentContext, currentDeadline } from '../core/context.ts';
import { isMeshletError } from '../core/errors.ts';
import { type Denial, type InboundRequest, InboundPipeline, newInboundRequest, type Phase, type PhaseName, runAdmitted } from './pipeline.ts';

/** A fake server adapter: builds the request view, admits it, renders a denial or runs the app in the admitted context. */
async function serve(pipeline: InboundPipeline, init: Partial<InboundRequest> = {}) {
  const req: InboundRequest = newInboundRequest({
    protocol: 'http1',
    method: 'GET',
    scheme: 'http',
    authority: 'httpbin:8000',
    path: '/headers',
    headers: Object.create(null),
    remoteAddress: '10.0.0.7',
    remotePort: 40000,
    localPort: 8000,
    ...init,
  });
  const a = await pipeline.admit(req);
  if (!a.admitted) return { served: false as const, denial: a.denial };
  // The app: what it sees of the mesh context, synchronously and after an await.
  const seen = await runAdmitted(a, async () => {
    const sync = currentContext();
    await new Promise((r) => setImmediate(r));
    return { sync, later: currentContext(), deadline: currentDeadline() };
  });
  return { served: true as const, seen, req };
}

const ran: string[] = [];
function phase(name: PhaseName, act: (req: InboundRequest) => Denial | undefined | Promise<Denial | undefined>): Phase {
  return {
    name,
    run(req) {
      ran.push(name);
      return act(req);
    },
  };
}
const deny = (name: PhaseName, status: number, grpcStatus: number, body: string, headers?: Record<string, string>): Denial => ({ status, grpcStatus, body, headers, reason: body, phase: name });
const peer = { principal: 'spiffe://cluster.local/ns/foo/sa/sleep', trustDomain: 'cluster.local', namespace: 'foo', serviceAccount: 'sleep', address: '10.0.0.7' };

describe('the inbound admission pipeline, through a fake adapter', () => {
  const rows: {
    name: string;
    phases: Phase[];
    req?: Partial<InboundRequest>;
    want: { served: boolean; status?: number; phase?: PhaseName; ran: string[]; principal?: string; peer?: string; deadline?: number };
  }[] = [
    { name: 'no phases: the app runs in an empty context', phases: [], want: { served: true, ran: [] } },
    {
      name: 'every phase lets it through, in order; the app sees peer and principal',
      phases: [
        phase('peer-identity', (r) => {
          r.peer = peer;
          return undefined;
        }),
        phase('jwt', (r) => {
          r.requestPrincipal = 'issuer.example/alice';
          r.claims = { sub: 'alice' };
          return undefined;
        }),
        phase('authorization', () => undefined),
        phase('rate-limit', () => undefined),
      ],
      want: { served: true, ran: ['peer-identity', 'jwt', 'authorization', 'rate-limit'], principal: 'issuer.example/alice', peer: peer.principal },
    },
    {
      name: 'an invalid token is answered 401 by the jwt phase; later phases do not run',
      phases: [phase('jwt', () => deny('jwt', 401, 16, 'Jwt is expired', { 'www-authenticate': 'Bearer realm="http://httpbin:8000/headers", error="invalid_token"' })), phase('authorization', () => undefined)],
      want: { served: false, status: 401, phase: 'jwt', ran: ['jwt'] },
    },
    {
      name: 'an asynchronous phase (a JWKS fetch) then a synchronous one',
      phases: [
        phase('jwt', async (r) => {
          await new Promise((res) => setTimeout(res, 1));
          r.requestPrincipal = 'iss/bob';
          return undefined;
        }),
        phase('authorization', (r) => (r.requestPrincipal === 'iss/bob' ? undefined : deny('authorization', 403, 7, 'RBAC: access denied'))),
      ],
      want: { served: true, ran: ['jwt', 'authorization'], principal: 'iss/bob' },
    },
    {
      name: 'authorization denies with 403',
      phases: [phase('peer-identity', () => undefined), phase('authorization', () => deny('authorization', 403, 7, 'RBAC: access denied')), phase('rate-limit', () => undefined)],
      want: { served: false, status: 403, phase: 'authorization', ran: ['peer-identity', 'authorization'] },
    },
    {
      name: 'rate limited: 429',
      phases: [phase('rate-limit', () => deny('rate-limit', 429, 8, 'local_rate_limited', { 'x-local-rate-limit': 'true' }))],
      want: { served: false, status: 429, phase: 'rate-limit', ran: ['rate-limit'] },
    },
    {
      name: 'a phase that throws fails closed (500), never lets the request through',
      phases: [
        phase('authorization', () => {
          throw new Error('policy engine bug');
        }),
        phase('rate-limit', () => undefined),
      ],
      want: { served: false, status: 500, phase: 'authorization', ran: ['authorization'] },
    },
    {
      name: 'a phase whose promise rejects fails closed too',
      phases: [phase('jwt', () => Promise.reject(new Error('JWKS parse error'))), phase('authorization', () => undefined)],
      want: { served: false, status: 500, phase: 'jwt', ran: ['jwt'] },
    },
    {
      name: "the request's deadline becomes the app's context deadline",
      phases: [],
      req: { deadline: 12345.5 },
      want: { served: true, ran: [], deadline: 12345.5 },
    },
  ];
  for (const row of rows) {
    it(row.name, async () => {
      ran.length = 0;
      const out = await serve(new InboundPipeline(row.phases), row.req);
      assert.deepEqual(ran, row.want.ran, 'phases run');
      assert.equal(out.served, row.want.served);
      if (!out.served) {
        assert.equal(out.denial.status, row.want.status);
        assert.equal(out.denial.phase, row.want.phase);
        return;
      }
      for (const ctx of [out.seen.sync, out.seen.later]) {
        assert.equal(ctx.requestPrincipal, row.want.principal);
        assert.equal(ctx.peer?.principal, row.want.peer);
        assert.equal(ctx.deadline, row.want.deadline ?? Number.POSITIVE_INFINITY);
      }
      assert.equal(out.seen.deadline, row.want.deadline ?? Number.POSITIVE_INFINITY, 'currentDeadline() reads the same store');
    });
  }

  it('an all-synchronous admission is answered without a promise', () => {
    const p = new InboundPipeline([phase('authorization', () => undefined)]);
    const req = { headers: {}, deadline: Number.POSITIVE_INFINITY } as unknown as InboundRequest;
    assert.ok(!(p.admit(req) instanceof Promise));
  });

  it('a rate-limit phase with `before` runs just ahead of that phase, and may be there as well as at its own place', async () => {
    const rl = (before?: PhaseName) => ({ name: 'rate-limit' as const, before, run: () => void ran.push(`rate-limit${before === undefined ? '' : `<${before}`}`) });
    const p = new InboundPipeline([rl('ext-authz'), phase('ext-authz', () => undefined), rl('jwt'), phase('jwt', () => undefined), rl('authorization'), phase('authorization', () => undefined), rl()]);
    assert.deepEqual(p.names, ['rate-limit', 'ext-authz', 'rate-limit', 'jwt', 'rate-limit', 'authorization', 'rate-limit']);
    ran.length = 0;
    await p.admit({ headers: {}, deadline: Number.POSITIVE_INFINITY } as unknown as InboundRequest);
    assert.deepEqual(ran, ['rate-limit<ext-authz', 'ext-authz', 'rate-limit<jwt', 'jwt', 'rate-limit<authorization', 'authorization', 'rate-limit']);
  });

  it('phases are checked when the pipeline is built: known, distinct, in order', () => {
    const ok = () => undefined;
    assert.deepEqual(new InboundPipeline([phase('peer-identity', ok), phase('rate-limit', ok)]).names, ['peer-identity', 'rate-limit']);
    for (const [phases, msg] of [
      [[phase('rate-limit', ok), phase('jwt', ok)], /phase "jwt" must run before "rate-limit"/],
      [[phase('jwt', ok), phase('jwt', ok)], /phase "jwt" is given twice/],
      [[phase('jwt', ok), phase('ext-authz', ok)], /phase "ext-authz" must run before "jwt"/],
      [[{ name: 'cors', run: ok } as unknown as Phase], /unknown phase "cors"; phases are peer-identity, ext-authz, jwt, authorization, rate-limit/],
      [[phase('jwt', ok), { ...phase('rate-limit', ok), before: 'jwt' }], /phase "rate-limit \(before jwt\)" must run before "jwt"/],
      [[{ ...phase('rate-limit', ok), before: 'jwt' }, { ...phase('rate-limit', ok), before: 'jwt' }], /phase "rate-limit \(before jwt\)" is given twice/],
      [[{ ...phase('rate-limit', ok), before: 'connection-pool' }], /phase "rate-limit" cannot run before "connection-pool"/],
      [[{ ...phase('rate-limit', ok), before: 'peer-identity' }], /phase "rate-limit" cannot run before "peer-identity"/],
      [[{ ...phase('rate-limit', ok), before: 'cors' } as unknown as Phase], /runs before an unknown phase "cors"/],
    ] as const) {
      assert.throws(() => new InboundPipeline(phases as unknown as Phase[]), (e: unknown) => isMeshletError(e, 'MESHLET_ERR_INVALID_ARG') && msg.test((e as Error).message));
    }
  });
});
