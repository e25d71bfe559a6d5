/**
 * Kubernetes Service ports whose protocol Istio (and meshlet) cannot tell from the Service
 * (`IST0118`), and ExternalName Service ports named so that Istio's sidecars may not forward
 * them (`IST0150`), as Istio's `PortNameAnalyzer` reports them.
 *
 * @module
 */
import { AUTO_PROTOCOL, convertProtocol } from '../protocol.ts';
import { ofKind, type Resource } from '../resource.ts';
import type { Analyzer } from './context.ts';

/** Namespaces Istio's analysis leaves out (Kubernetes' own, `inject.IgnoredNamespaces`). */
export const IGNORED_NAMESPACES: ReadonlySet<string> = new Set(['kube-system', 'kube-public', 'kube-node-lease', 'local-path-storage']);

/** The `gateway.istio.io/managed` values of Services Istio creates itself (not the user's). */
const MANAGED = new Set(['istio.io-gateway-controller', 'istio.io-mesh-controller', 'istio.io-eastwest-controller']);

/** Services of Istio's own control plane (an `istio` label, or `release: istio`) or made by Istio's gateway controllers. */
function skipped(svc: Resource<'Service'>): boolean {
  const labels = svc.metadata.labels ?? {};
  if (Object.hasOwn(labels, 'istio') || labels.release === 'istio') return true;
  const managed = labels['gateway.istio.io/managed'];
  return managed !== undefined && MANAGED.has(managed);
}

/**
 * `IST0118` PortNameIsNotUnderNamingConvention (info): neither `appProtocol` nor the port name
 * (`<protocol>[-<suffix>]`) names a protocol, so the protocol is sniffed (meshlet routes such a
 * port as HTTP). `IST0150` ExternalNameServiceTypeInvalidPortName (warning): the same, or a port
 * named `tcp`, on an ExternalName Service.
 */
export const portNameAnalyzer: Analyzer = {
  name: 'service.port-names',
  codes: ['IST0118', 'IST0150'],
  description: 'Kubernetes Service ports name their protocol',
  *analyze(ctx, issues) {
    for (const svc of ofKind(ctx.resources, 'Service')) {
      yield;
      if (IGNORED_NAMESPACES.has(svc.metadata.namespace) || skipped(svc)) continue;
      const external = svc.spec.type === 'ExternalName';
      (svc.spec.ports ?? []).forEach((p, i) => {
        const unknown = convertProtocol(p.port, p.name, p.protocol, p.appProtocol) === AUTO_PROTOCOL;
        if (!unknown && !(external && p.name === 'tcp')) return;
        const shown = p.name === undefined || p.name === '' ? 'has no name' : `name "${p.name}" names no protocol`;
        if (external) {
          issues.at(
            svc,
            ['spec', 'ports', i],
            'warning',
            `port ${p.port} of an ExternalName Service ${unknown ? shown : 'is named "tcp"'}: Istio's sidecars may not forward its traffic correctly; name it for its protocol (e.g. https-${p.port})`,
            'IST0150',
          );
          return;
        }
        issues.at(svc, ['spec', 'ports', i], 'info', `port ${p.port} ${shown} (and no appProtocol): its protocol is detected from the traffic (meshlet routes it as HTTP); name it <protocol>[-<suffix>], e.g. http-web`, 'IST0118');
      });
    }
  },
};
