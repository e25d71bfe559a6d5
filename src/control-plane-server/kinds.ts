/**
 * Kind names as people type them: case-insensitive, plural, or kubectl-style short names
 * (`vs`, `dr`, `se`, `we`, `wg`, `svc`, `pa`, `ra`, `ap`).
 *
 * @module
 */
import { KIND_VERSIONS, type Kind } from '../config/resource.ts';

/** Short names of the kinds meshlet serves. */
export const SHORT_KIND_NAMES: Readonly<Record<string, Kind>> = {
  vs: 'VirtualService',
  dr: 'DestinationRule',
  se: 'ServiceEntry',
  we: 'WorkloadEntry',
  wg: 'WorkloadGroup',
  svc: 'Service',
  pa: 'PeerAuthentication',
  ra: 'RequestAuthentication',
  ap: 'AuthorizationPolicy',
  telemetry: 'Telemetry',
};

const BY_LOWER = new Map<string, Kind>();
for (const k of Object.keys(KIND_VERSIONS) as Kind[]) {
  BY_LOWER.set(k.toLowerCase(), k);
  BY_LOWER.set(`${k.toLowerCase()}s`, k);
  if (KIND_VERSIONS[k].group !== '') BY_LOWER.set(`${k.toLowerCase()}.${KIND_VERSIONS[k].group}`, k);
}
BY_LOWER.set('authorizationpolicies', 'AuthorizationPolicy');
BY_LOWER.set('telemetries', 'Telemetry');
for (const [short, k] of Object.entries(SHORT_KIND_NAMES)) BY_LOWER.set(short, k);

/** The kind a name means, or `undefined`. */
export function resolveKind(text: string): Kind | undefined {
  return BY_LOWER.get(text.toLowerCase());
}
