/**
 * What the hand-written routing cases share: where Istio's tests are, and a ServiceEntry builder.
 */

export const ROUTE_TEST = 'pilot/pkg/networking/core/route/route_test.go';
export const HTTPROUTE_TEST = 'pilot/pkg/networking/core/httproute_test.go';

/** A ServiceEntry document; `extra` replaces the default location, resolution and endpoint. */
export function se(name: string, namespace: string, host: string, ports: string, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${namespace}}
spec:
  hosts: ["${host}"]
  ports: ${ports}
${extra === '' ? '  location: MESH_INTERNAL\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.9}]' : extra}
`;
}
