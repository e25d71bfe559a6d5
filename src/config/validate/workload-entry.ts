/**
 * Validation of `WorkloadEntrySpec`, which is also the shape of ServiceEntry `endpoints`.
 * Follows Istio's `validateWorkloadEntry`: the address is an IP, a DNS name or a `unix://`
 * socket path, and may be left out only when `network` is set.
 *
 * @module
 */
import type { WorkloadEntrySpec } from '../types/networking.ts';
import { checkDnsLabel, isIpAddress, labels } from './common.ts';
import { checkFqdn, checkLocality, checkUnixAddress, UINT32_MAX, UNIX_PREFIX } from './shared-networking.ts';
import { fail, int, map, obj, port, str, strWith, warn, type Validator } from './schema.ts';

/** Checks an endpoint address: an IP, a DNS name, or `unix://<absolute path>`. Returns a problem or nothing. */
export function checkWorkloadAddress(address: string): string | undefined {
  if (address === '') return undefined; // unset; the object check decides whether that is allowed
  if (address.startsWith(UNIX_PREFIX)) return checkUnixAddress(address);
  if (isIpAddress(address)) return undefined;
  return checkFqdn(address) === undefined ? undefined : `"${address}" is not an IP address, a DNS name or a unix:// path`;
}

/** Whether an address is a Unix domain socket (`unix://…`). */
export function isUnixAddress(address: string | undefined): boolean {
  return address?.startsWith(UNIX_PREFIX) ?? false;
}

/**
 * Validates a WorkloadEntry spec or a ServiceEntry endpoint. The address is required unless
 * `network` is set (Istio then reaches the workload through that network's gateway, which
 * meshlet cannot do, so that case is a warning). ServiceEntry adds the rules that depend on
 * its `resolution` and `ports`.
 */
export const workloadEntrySpec: Validator<WorkloadEntrySpec> = obj<WorkloadEntrySpec>(
  {
    address: strWith(checkWorkloadAddress),
    // Keys are ServiceEntry port names (DNS-1123 labels, as Istio's ValidatePortName requires).
    ports: map(port, { key: (k) => (checkDnsLabel(k) === undefined ? undefined : `invalid port name "${k}": must be a DNS-1123 label`), max: 128 }),
    labels,
    network: str,
    locality: strWith((s) => (s === '' ? undefined : checkLocality(s))),
    weight: int({ min: 0, max: UINT32_MAX }),
    serviceAccount: strWith((s) => (s.length > 253 ? 'must be at most 253 characters' : undefined)),
  },
  {
    check: (we, path, ctx) => {
      const address = we.address ?? '';
      const network = we.network ?? '';
      if (address === '') {
        if (network === '') fail(ctx, [...path, 'address'], 'is required (or set network)');
        else warn(ctx, [...path, 'address'], `is unset with network "${network}": Istio reaches such workloads through that network's gateway, which meshlet cannot; the endpoint is not used`);
      }
      if (isUnixAddress(address) && we.ports !== undefined && Object.keys(we.ports).length > 0) {
        fail(ctx, [...path, 'ports'], 'must be empty for a unix:// address');
      }
    },
  },
);

/**
 * The validator for ServiceEntry `endpoints`: the same rules as a standalone WorkloadEntry
 * (Istio uses one function for both). Kept as its own name so ServiceEntry code reads clearly.
 */
export const endpointSpec: Validator<WorkloadEntrySpec> = workloadEntrySpec;
