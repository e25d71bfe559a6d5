/**
 * A mesh's east-west gateway host names (`outbound/gateway-names.ts`) from its options, and the
 * network settings whose compiles read their addresses. Apart from `mesh-network-options.ts`, so
 * `meshlet routes` (which builds no data-plane state) does not load the name cache.
 *
 * @module
 */
import { type Clock, systemClock } from './core/clock.ts';
import type { NetworkSettings } from './config/network-topology.ts';
import { networkSettings } from './mesh-network-options.ts';
import { DEFAULT_DNS_REFRESH_MS, type DnsOptions, systemDnsResolve } from './outbound/dns-target.ts';
import { GatewayNames } from './outbound/gateway-names.ts';

/**
 * The mesh's cache of east-west gateway host names: resolved with its `dns.resolve` (by default the
 * OS's addresses with their records' TTL; an answer without one is kept for `dns.refreshRateMs`), on its clock.
 */
export function meshGatewayNames(o: { readonly dns?: DnsOptions | undefined; readonly clock?: Clock | undefined }, logger: { warn(message: string): void; info?(message: string): void }): GatewayNames {
  return new GatewayNames({ resolve: o.dns?.resolve ?? systemDnsResolve, refreshMs: o.dns?.refreshRateMs ?? DEFAULT_DNS_REFRESH_MS, clock: o.clock ?? systemClock, logger });
}

/** {@link networkSettings} whose compiles take gateway host names' addresses from `names`. */
export function networkSettingsWith(o: Parameters<typeof networkSettings>[0], names: GatewayNames | undefined): NetworkSettings {
  const settings = networkSettings(o);
  return names === undefined ? settings : Object.freeze({ ...settings, gatewayAddresses: names.lookup });
}
