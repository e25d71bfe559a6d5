/**
 * A gateway host name's new addresses compile the control plane's state again; a pushed MeshConfig
 * compiles it again too. The two ran side by side and each installed its snapshot if the state was
 * still the one it compiled — so a gateway recompile that started under the old MeshConfig
 * (ALLOW_ANY) and ended after the MeshConfig's own recompile (REGISTRY_ONLY) put the old settings
 * back until the next change: a fail-open. A compile now installs only if nothing it reads besides
 * the config changed while it ran (`GatewayNames.generation`), and a config that must be installed
 * is compiled again when it did (`compileCurrent`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GoodState } from '../../src/control-plane/state.ts';
import { recompileOnGatewayChange } from '../../src/create-mesh.ts';
import { ManualClock } from '../../src/index.ts';
import type { Mesh } from '../../src/mesh.ts';
import type { DnsAnswer } from '../../src/outbound/dns-target.ts';
import { compileCurrent, GatewayNames } from '../../src/outbound/gateway-names.ts';
import type { Snapshot } from '../../src/routing/compile.ts';

const quiet = { warn: () => undefined, info: () => undefined };

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Lets every promise chain started so far run (the recompile queue, the compile, the install). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Gateway names whose one name answers when the test says. */
function names(): { names: GatewayNames; answer(addresses: string[]): Promise<void> } {
  let pending = deferred<DnsAnswer>();
  const n = new GatewayNames({
    resolve: () => pending.promise,
    refreshMs: 60_000,
    clock: new ManualClock(0),
    logger: quiet,
  });
  n.use(['gw.example.com']);
  return {
    names: n,
    async answer(addresses) {
      const p = pending;
      pending = deferred<DnsAnswer>();
      p.resolve({ addresses, ttlMs: 30_000 } as DnsAnswer);
      await settle();
    },
  };
}

const snap = (name: string): Snapshot => ({ name, gatewayHostnames: [] }) as unknown as Snapshot;

describe('gateway-name recompiles and MeshConfig recompiles', () => {
  it('a gateway recompile that started under the old MeshConfig is not installed over the newer one', async () => {
    const { names: n, answer } = names();
    const state = { configVersion: 'v1' } as GoodState;
    const installed: string[] = [];
    const mesh = { install: (s: Snapshot) => installed.push((s as unknown as { name: string }).name) } as unknown as Mesh;
    const compiles: { resolve(s: Snapshot): void }[] = [];
    recompileOnGatewayChange(
      n,
      () => state,
      () => {
        const d = deferred<Snapshot>();
        compiles.push(d);
        return d.promise;
      },
      mesh,
      quiet,
    );
    await answer(['10.0.0.1']); // the name's first answer: a recompile starts
    await settle();
    assert.equal(compiles.length, 1, 'the address change started a recompile');
    // A pushed MeshConfig changes the settings; its own recompile (the watch's) installs first.
    n.settingsChanged();
    installed.push('meshconfig-recompile');
    // The gateway recompile ends, with the settings it read before the MeshConfig came.
    compiles[0]?.resolve(snap('gateway-recompile-old-settings'));
    await settle();
    assert.deepEqual(installed, ['meshconfig-recompile'], 'the stale gateway recompile must not replace the newer snapshot');

    await n.close();
  });

  it('a later address change is installed when nothing changed while it compiled', async () => {
    const { names: n, answer } = names();
    const installed: string[] = [];
    const mesh = { install: (s: Snapshot) => installed.push((s as unknown as { name: string }).name) } as unknown as Mesh;
    let count = 0;
    const state = { configVersion: 'v1' } as GoodState;
    recompileOnGatewayChange(n, () => state, async () => snap(`gateway-${++count}`), mesh, quiet);
    await answer(['10.0.0.1']);
    await settle();
    assert.deepEqual(installed, ['gateway-1']);
    await n.close();
  });

  it('compileCurrent compiles a config again when the settings changed while it compiled', async () => {
    const { names: n } = names();
    let calls = 0;
    const s = await compileCurrent(async () => {
      calls++;
      if (calls === 1) n.settingsChanged(); // a MeshConfig came while the first compile ran
      return snap(`compile-${calls}`);
    }, n);
    assert.equal(calls, 2);
    assert.equal((s as unknown as { name: string }).name, 'compile-2');
    // Bounded: settings changing on every compile end after three.
    let always = 0;
    await compileCurrent(async () => {
      always++;
      n.settingsChanged();
      return snap('x');
    }, n);
    assert.equal(always, 3);
    await n.close();
  });
});
