/**
 * `%RESPONSE_CODE_DETAILS%` of failures the mesh makes, through real meshes and upstreams: the
 * default `errors: 'respond'` (the caller gets the sidecar's answer) and `errors: 'throw'` (the
 * caller gets the error) log what Envoy's router sets — `response_timeout`,
 * `upstream_per_try_timeout`, `upstream_reset_before_response_started{<reset reason>}` — and an
 * answer from the upstream stays `via_upstream`; `%UPSTREAM_TRANSPORT_FAILURE_REASON%` is the
 * connect's socket error in Envoy's words, blanks as `_`, whichever way the caller got the failure.
 * Timeouts run on a ManualClock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createMesh, ManualClock, type Mesh } from '../../src/index.ts';
import { capture, T0, telemetry, until } from '../helpers/access-log.ts';
import { deadPort, serviceEntry, startUpstream, type Upstream, virtualService } from '../helpers/upstreams.ts';

for (const errors of ['respond', 'throw'] as const) {
  describe(`details of mesh-made failures (errors: '${errors}')`, () => {
    let hang: Upstream;
    let reset: Upstream;
    let busy: Upstream;
    let mesh: Mesh;
    const held: (() => void)[] = [];
    const log = capture();
    const clock = new ManualClock(T0);

    before(async () => {
      hang = await startUpstream('hang', (_q, res) => {
        held.push(() => res.end());
      });
      reset = await startUpstream('reset', (q) => {
        q.socket.destroy();
      });
      busy = await startUpstream('busy', (_q, res) => {
        res.statusCode = 503;
        res.end('busy');
      });
      const dead = await deadPort();
      const svc = (name: string, port: number) => serviceEntry(name, `${name}.default.svc.cluster.local`, 80, [{ port }]);
      mesh = await createMesh({
        service: 'reviews',
        clock,
        errors,
        logger: log.logger,
        extensionProviders: [{ name: 'details', envoyFileAccessLog: { logFormat: { text: '%REQ(:AUTHORITY)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_TRANSPORT_FAILURE_REASON%' } } }],
        config: [
          svc('hang', hang.port),
          svc('pertry', hang.port),
          svc('dead', dead),
          svc('reset', reset.port),
          svc('busy', busy.port),
          virtualService('hang', ['hang'], [{ name: 'r', route: [{ destination: { host: 'hang' } }], timeout: '1s' }]),
          virtualService('pertry', ['pertry'], [{ name: 'r', route: [{ destination: { host: 'pertry' } }], retries: { attempts: 1, perTryTimeout: '100ms', retryOn: '5xx' } }]),
          virtualService('dead', ['dead'], [{ name: 'r', route: [{ destination: { host: 'dead' } }], retries: { attempts: 1, retryOn: 'connect-failure' } }]),
          virtualService('reset', ['reset'], [{ name: 'r', route: [{ destination: { host: 'reset' } }], retries: { attempts: 0 } }]),
          virtualService('busy', ['busy'], [{ name: 'r', route: [{ destination: { host: 'busy' } }], retries: { attempts: 1, retryOn: '5xx' } }]),
          telemetry('mesh-default', { accessLogging: [{ providers: [{ name: 'details' }] }] }),
        ],
      });
    });
    after(async () => {
      for (const r of held.splice(0)) r();
      await mesh.close();
      await Promise.all([hang.close(), reset.close(), busy.close()]);
    });

    /** Makes a call, moving the mesh clock on while it waits (timeouts, backoffs); the status it got (0: an error). */
    async function status(url: string): Promise<number> {
      let done = false;
      const p = mesh.fetch(url).then(
        async (r) => {
          await r.text();
          return r.status;
        },
        () => 0,
      );
      void p.finally(() => {
        done = true;
      });
      while (!done) {
        if (clock.pending > 0) clock.advance(100);
        await new Promise((r) => setTimeout(r, 2));
      }
      return p;
    }

    test('a route timeout: response_timeout; a per-try timeout: upstream_per_try_timeout', async () => {
      log.entries.length = 0;
      assert.equal(await status('http://hang/'), errors === 'respond' ? 504 : 0);
      assert.equal(await status('http://pertry/'), errors === 'respond' ? 504 : 0);
      await until(() => log.lines().length === 2, 'the lines');
      assert.deepEqual(log.lines(), ['hang 504 UT response_timeout -', 'pertry 504 URX,UT upstream_per_try_timeout -']);
    });

    test("a connect failure and a connection closed before the answer: upstream_reset_before_response_started with Envoy's reset reason", async () => {
      log.entries.length = 0;
      assert.equal(await status('http://dead/'), errors === 'respond' ? 503 : 0);
      assert.equal(await status('http://reset/'), errors === 'respond' ? 503 : 0);
      await until(() => log.lines().length === 2, 'the lines');
      assert.deepEqual(log.lines(), ['dead 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} delayed_connect_error:_Connection_refused',
        'reset 503 UC upstream_reset_before_response_started{connection_termination} -',
      ]);
    });

    test("the upstream's own 503, retries exhausted: via_upstream", async () => {
      log.entries.length = 0;
      assert.equal(await status('http://busy/'), 503);
      await until(() => log.lines().length === 1, 'the line');
      assert.deepEqual(log.lines(), ['busy 503 URX via_upstream -']);
    });
  });
}
