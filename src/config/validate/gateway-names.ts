/**
 * Gateway names in VirtualServices (`gateways`, `match[].gateways`) and the hosts of a
 * VirtualService bound to gateways, checked as Istio's `validateGatewayNames` and
 * `ValidateWildcardDomainForVirtualServiceBoundToGateway` do.
 *
 * @module
 */
import { checkDnsLabel, checkHost } from './common.ts';
import { checkFqdn } from './shared-networking.ts';

/** The reserved gateway name for sidecars (meshlet). */
export const MESH_GATEWAY = 'mesh';

/** The outcome of checking one gateway name. */
export interface GatewayNameCheck {
  readonly error?: string;
  readonly warning?: string;
}

/**
 * Checks a gateway reference: `<namespace>/<name>` (both DNS labels), or a name without a
 * namespace (`mesh`, a gateway in the VirtualService's namespace), which must be a valid
 * DNS name; the legacy `<name>.<namespace>` form is accepted with a warning.
 */
export function checkGatewayName(name: string): GatewayNameCheck {
  const slash = name.indexOf('/');
  if (slash === -1) {
    const fqdn = checkFqdn(name);
    if (fqdn !== undefined) return { error: `invalid gateway name "${name}": ${fqdn}` };
    if (name.includes('.')) {
      const [gw, ns] = name.split('.');
      return { warning: `gateway "${name}" uses the legacy <name>.<namespace> form; write "${ns}/${gw}"` };
    }
    return {};
  }
  const ns = name.slice(0, slash);
  const gw = name.slice(slash + 1);
  if (ns === '' || gw === '') return { error: `invalid gateway name "${name}": the namespace and the name must not be empty` };
  const nsProblem = checkDnsLabel(ns);
  if (nsProblem !== undefined) return { error: `invalid gateway name "${name}": namespace ${nsProblem}` };
  const gwProblem = checkDnsLabel(gw);
  if (gwProblem !== undefined) return { error: `invalid gateway name "${name}": name ${gwProblem}` };
  return {};
}

/**
 * Checks a host of a VirtualService bound to gateways. With a TLS route (`sni`), the host may
 * be an auto-generated SNI name `outbound_.<port>_.<subset>_.<host>` (AUTO_PASSTHROUGH gateways).
 */
export function checkGatewayHost(host: string, sni: boolean): string | undefined {
  if (sni && host.startsWith('outbound_')) {
    const parts = host.split('_');
    if (parts.length < 4) return `invalid SNI host "${host}": expected outbound_.<port>_.<subset>_.<host>`;
    const trimDots = (s: string) => s.replace(/^\.+|\.+$/g, '');
    const port = trimDots(parts[1] as string);
    const hostname = trimDots(parts[3] as string);
    if (!/[0-9]/.test(port)) return `invalid SNI host "${host}": "${port}" is not a port`;
    if (!/[a-zA-Z]/.test(hostname)) return `invalid SNI host "${host}": "${hostname}" is not a host name`;
    return undefined;
  }
  return checkHost(host);
}
