/**
 * Waiting for a mesh's events in tests without catching the wrong one.
 */
import type { ConfigAppliedEvent, Mesh } from '../../src/index.ts';

/**
 * The next `config` event applying a version other than the one in use now. A plain
 * `once(mesh, 'config')` can catch an event that changes nothing the test waits for: the start
 * event (emitted on the turn after `createMesh` resolves), or, from a control plane, an
 * endpoints-only update — the wait after it then also covers the change itself, on a real-time
 * bound.
 */
export function nextConfig(mesh: Mesh): Promise<ConfigAppliedEvent> {
  const current = mesh.configVersion;
  return new Promise((resolve) => {
    const on = (e: ConfigAppliedEvent) => {
      if (e.version === current) return;
      mesh.off('config', on);
      resolve(e);
    };
    mesh.on('config', on);
  });
}
