import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => [...analysisFindings(yaml, 'IST0118', true), ...analysisFindings(yaml, 'IST0150', true)];

/** A Service with the given port list (YAML flow sequence), namespace and extra metadata. */
function svc(name: string, ports: string, o: { namespace?: string; labels?: string; type?: string } = {}): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${o.namespace ?? 'default'}${o.labels === undefined ? '' : `, labels: ${o.labels}`}}
spec:
  ${o.type === undefined ? 'selector: {app: web}' : `type: ${o.type}\n  externalName: nginx.example.com`}
  ports: ${ports}`;
}

describe('IST0118 port names and IST0150 ExternalName port names', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    { name: 'http-web, grpc, tcp-db: clean', yaml: svc('web', '[{name: http-web, port: 80}, {name: grpc, port: 9090}, {name: tcp-db, port: 5432}]'), expect: [] },
    { name: 'appProtocol names the protocol: clean', yaml: svc('web', '[{name: web, port: 80, appProtocol: http}]'), expect: [] },
    {
      name: 'a name that names no protocol (Istio: my-namespace2/my-service2)',
      yaml: svc('my-service2', '[{name: foo, port: 8080, protocol: TCP, targetPort: 8080}]', { namespace: 'my-namespace2' }),
      expect: ['info Service my-namespace2/my-service2 spec.ports[0]: port 8080 name "foo" names no protocol (and no appProtocol): its protocol is detected from the traffic (meshlet routes it as HTTP); name it <protocol>[-<suffix>], e.g. http-web'],
    },
    {
      name: 'an unnamed single port',
      yaml: svc('web', '[{port: 8080}]'),
      expect: ['info Service default/web spec.ports[0]: port 8080 has no name (and no appProtocol): its protocol is detected from the traffic (meshlet routes it as HTTP); name it <protocol>[-<suffix>], e.g. http-web'],
    },
    { name: 'an unnamed well-known TCP port (3306) is TCP: clean', yaml: svc('db', '[{port: 3306}]'), expect: [] },
    { name: "Istio's own control plane (an istio label): skipped", yaml: svc('my-service2', '[{name: foo, port: 8080}]', { namespace: 'istio-system', labels: '{istio: xxx}' }), expect: [] },
    { name: 'release: istio: skipped', yaml: svc('my-service4', '[{name: foo, port: 8080}]', { namespace: 'istio-system', labels: '{release: istio}' }), expect: [] },
    { name: 'a Service of a gateway Istio manages: skipped', yaml: svc('gateway-istio', '[{name: default, port: 80}]', { labels: '{gateway.istio.io/managed: istio.io-gateway-controller}' }), expect: [] },
    { name: "kube-public (a namespace Istio's analysis ignores): skipped", yaml: svc('my-service3', '[{name: bar, port: 8080}]', { namespace: 'kube-public' }), expect: [] },
    {
      name: 'ExternalName ports named "tcp" or for no protocol (Istio: nginx-ns/nginx, nginx-ns3/nginx-svc3)',
      yaml: [svc('nginx', '[{name: nginx, port: 443}]', { type: 'ExternalName' }), svc('nginx-svc3', '[{name: tcp, port: 443}]', { type: 'ExternalName' })].join('\n---\n'),
      expect: [
        'warning Service default/nginx spec.ports[0]: port 443 of an ExternalName Service name "nginx" names no protocol: Istio\'s sidecars may not forward its traffic correctly; name it for its protocol (e.g. https-443)',
        'warning Service default/nginx-svc3 spec.ports[0]: port 443 of an ExternalName Service is named "tcp": Istio\'s sidecars may not forward its traffic correctly; name it for its protocol (e.g. https-443)',
      ],
    },
    { name: 'an ExternalName port named https: clean', yaml: svc('nginx-svc4', '[{name: https, port: 443}]', { type: 'ExternalName' }), expect: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(findings(c.yaml), c.expect));
});

describe('IST0118 is an analysis finding', () => {
  it('is reported once per port by analysis, not by validation (Service web, db on 3306 is TCP)', () => {
    const yaml = svc('web', '[{name: web, port: 80}, {name: http-api, port: 81}, {name: db, port: 3306}]');
    assert.deepEqual(findings(yaml), [
      'info Service default/web spec.ports[0]: port 80 name "web" names no protocol (and no appProtocol): its protocol is detected from the traffic (meshlet routes it as HTTP); name it <protocol>[-<suffix>], e.g. http-web',
    ]);
  });
});
