import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';
import type { KubeServiceSpec } from '../types/kubernetes.ts';

const svc = (spec: string, name = 'reviews') => doc('v1', 'Service', name, spec);

/** `kubectl get svc -o yaml` of a ClusterIP and of a LoadBalancer Service, as Kubernetes 1.31 prints them. */
const DUMPED_CLUSTER_IP = `apiVersion: v1
kind: Service
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app":"reviews","service":"reviews"},"name":"reviews","namespace":"default"},"spec":{"ports":[{"name":"http","port":9080}],"selector":{"app":"reviews"}}}
  creationTimestamp: "2025-03-01T10:00:00Z"
  labels:
    app: reviews
    service: reviews
  name: reviews
  namespace: default
  resourceVersion: "1234"
  uid: 6b0f6a5e-2a3b-4c5d-8e9f-0123456789ab
  managedFields:
  - apiVersion: v1
    fieldsType: FieldsV1
    manager: kubectl-client-side-apply
    operation: Update
    time: "2025-03-01T10:00:00Z"
spec:
  clusterIP: 10.96.12.34
  clusterIPs:
  - 10.96.12.34
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - name: http
    port: 9080
    protocol: TCP
    targetPort: 9080
  selector:
    app: reviews
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer: {}
`;

const DUMPED_LOAD_BALANCER = `apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: istio-system
  finalizers:
  - service.kubernetes.io/load-balancer-cleanup
spec:
  allocateLoadBalancerNodePorts: true
  clusterIP: 10.96.0.20
  clusterIPs: [10.96.0.20, "fd00::20"]
  externalTrafficPolicy: Local
  healthCheckNodePort: 31234
  internalTrafficPolicy: Cluster
  ipFamilies: [IPv4, IPv6]
  ipFamilyPolicy: PreferDualStack
  loadBalancerSourceRanges: [10.0.0.0/8]
  ports:
  - {name: status-port, nodePort: 30021, port: 15021, protocol: TCP, targetPort: 15021}
  - {name: http2, nodePort: 30080, port: 80, protocol: TCP, targetPort: 8080}
  - {name: https, nodePort: 30443, port: 443, protocol: TCP, targetPort: 8443}
  selector: {app: istio-ingressgateway, istio: ingressgateway}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  type: LoadBalancer
status:
  loadBalancer:
    ingress:
    - ip: 203.0.113.10
      ipMode: VIP
`;

describe('Service: valid Services', () => {
  const cases: { name: string; yaml: string }[] = [
    { name: 'a kubectl-dumped ClusterIP Service', yaml: DUMPED_CLUSTER_IP },
    { name: 'a kubectl-dumped LoadBalancer Service with status and node ports', yaml: DUMPED_LOAD_BALANCER },
    { name: "Bookinfo's details Service", yaml: svc('ports:\n- port: 9080\n  name: http\nselector:\n  app: details', 'details') },
    { name: 'one unnamed port', yaml: svc('ports: [{port: 80}]\nselector: {app: reviews}') },
    { name: 'a named targetPort', yaml: svc('ports: [{name: http, port: 80, targetPort: web}]\nselector: {app: reviews}') },
    { name: 'appProtocol', yaml: svc('ports: [{name: api, port: 80, appProtocol: kubernetes.io/h2c}, {name: grpc, port: 90, appProtocol: grpc}]') },
    { name: 'the same number over TCP and UDP', yaml: svc('ports: [{name: dns-tcp, port: 53, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]') },
    { name: 'a headless Service without ports', yaml: svc('clusterIP: None\nselector: {app: db}') },
    { name: 'an ExternalName Service', yaml: svc('type: ExternalName\nexternalName: api.example.com') },
    { name: 'an ExternalName with a trailing dot and ports', yaml: svc('type: ExternalName\nexternalName: api.example.com.\nports: [{name: https, port: 443}]') },
    { name: 'targetPort 0 (Kubernetes then uses port)', yaml: svc('ports: [{name: http, port: 80, targetPort: 0}]') },
    { name: 'an exportTo annotation', yaml: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  annotations: {networking.istio.io/exportTo: ".,shop"}\nspec:\n  ports: [{name: http, port: 80}]\n' },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(c.yaml);
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings.filter((w) => !w.includes('not supported by meshlet')), []);
      assert.equal(resources.length, 1);
      assert.equal(resources[0]?.kind, 'Service');
    });
  }

  it('returns the typed spec, with the fields meshlet does not use kept', () => {
    const { resources } = validateYaml(DUMPED_CLUSTER_IP);
    const spec = resources[0]?.spec as KubeServiceSpec;
    assert.deepEqual(spec.ports, [{ name: 'http', port: 9080, protocol: 'TCP', targetPort: 9080 }]);
    assert.deepEqual(spec.selector, { app: 'reviews' });
    assert.deepEqual(spec.ipFamilies, ['IPv4']);
    assert.equal(spec.sessionAffinity, 'None');
  });
});

describe('Service: rejected Services', () => {
  const cases: { name: string; yaml: string; error: RegExp }[] = [
    { name: 'a name that is not a DNS-1035 label', yaml: svc('ports: [{port: 80}]', '1reviews'), error: /metadata\.name: "1reviews" is not a valid Service name: a DNS-1035 label/ },
    { name: 'a dotted name', yaml: svc('ports: [{port: 80}]', 'reviews.v1'), error: /metadata\.name: "reviews\.v1" is not a valid Service name/ },
    { name: 'no ports', yaml: svc('selector: {app: reviews}'), error: /spec\.ports: is required \(at least one port\), unless the Service is headless/ },
    { name: 'port 0', yaml: svc('ports: [{name: http, port: 0}]'), error: /spec\.ports\[0\]\.port: must be >= 1, got 0/ },
    { name: 'port 65536', yaml: svc('ports: [{name: http, port: 65536}]'), error: /spec\.ports\[0\]\.port: must be <= 65535/ },
    { name: 'a port without a number', yaml: svc('ports: [{name: http}]'), error: /spec\.ports\[0\]\.port: is required/ },
    { name: 'a port number as a string', yaml: svc('ports: [{name: http, port: "80"}]'), error: /spec\.ports\[0\]\.port: must be an integer/ },
    { name: 'unnamed ports when there are several', yaml: svc('ports: [{name: http, port: 80}, {port: 81}]'), error: /spec\.ports\[1\]\.name: is required when a Service has more than one port/ },
    { name: 'a duplicate port name', yaml: svc('ports: [{name: http, port: 80}, {name: http, port: 81}]'), error: /spec\.ports\[1\]\.name: port name "http" is already used by ports\[0\]/ },
    { name: 'a duplicate port and protocol', yaml: svc('ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}]'), error: /spec\.ports\[1\]\.port: port 80\/TCP is already declared by ports\[0\]/ },
    { name: 'a port name that is not a DNS label', yaml: svc('ports: [{name: HTTP_web, port: 80}]'), error: /spec\.ports\[0\]\.name: "HTTP_web" is not a valid DNS-1123 label/ },
    { name: 'an unknown L4 protocol', yaml: svc('ports: [{name: http, port: 80, protocol: HTTP}]'), error: /spec\.ports\[0\]\.protocol: must be one of TCP, UDP, SCTP/ },
    { name: 'a lower-case L4 protocol', yaml: svc('ports: [{name: http, port: 80, protocol: tcp}]'), error: /spec\.ports\[0\]\.protocol: must be one of TCP, UDP, SCTP/ },
    { name: 'a targetPort out of range', yaml: svc('ports: [{name: http, port: 80, targetPort: 70000}]'), error: /spec\.ports\[0\]\.targetPort: must be a port number 1-65535 or a port name, got 70000/ },
    { name: 'a negative targetPort', yaml: svc('ports: [{name: http, port: 80, targetPort: -1}]'), error: /targetPort: must be a port number 1-65535/ },
    { name: 'a targetPort name longer than 15', yaml: svc('ports: [{name: http, port: 80, targetPort: a-very-long-port-name}]'), error: /targetPort: port name "a-very-long-port-name" must be 1 to 15 characters/ },
    { name: 'a targetPort name with upper case', yaml: svc('ports: [{name: http, port: 80, targetPort: Web}]'), error: /targetPort: port name "Web" may contain only lowercase letters/ },
    { name: 'a targetPort name without a letter', yaml: svc('ports: [{name: http, port: 80, targetPort: "8-0"}]'), error: /targetPort: port name "8-0" must contain at least one letter/ },
    { name: 'a targetPort name with --', yaml: svc('ports: [{name: http, port: 80, targetPort: we--b}]'), error: /targetPort: port name "we--b" must not contain "--"/ },
    { name: 'a targetPort number in quotes', yaml: svc('ports: [{name: http, port: 80, targetPort: "8080"}]'), error: /targetPort: "8080" is a number written as a string/ },
    { name: 'a bad appProtocol', yaml: svc('ports: [{name: http, port: 80, appProtocol: "a b"}]'), error: /appProtocol: "a b": the name part must be/ },
    { name: 'a node port out of range', yaml: svc('type: NodePort\nports: [{name: http, port: 80, nodePort: 70000}]'), error: /nodePort: must be <= 65535/ },
    { name: 'an unknown type', yaml: svc('type: Internal\nports: [{port: 80}]'), error: /spec\.type: must be one of ClusterIP, NodePort, LoadBalancer, ExternalName/ },
    { name: 'a bad clusterIP', yaml: svc('clusterIP: none\nports: [{port: 80}]'), error: /spec\.clusterIP: "none" is not an IP address \(or "None" for a headless Service\)/ },
    { name: 'ExternalName without externalName', yaml: svc('type: ExternalName'), error: /spec\.externalName: is required when type is ExternalName/ },
    { name: 'ExternalName with a bad host', yaml: svc('type: ExternalName\nexternalName: "api example.com"'), error: /spec\.externalName: .*an ExternalName Service names a DNS host/ },
    { name: 'ExternalName with a clusterIP', yaml: svc('type: ExternalName\nexternalName: a.example.com\nclusterIP: 10.0.0.1'), error: /spec\.clusterIP: must be empty when type is ExternalName/ },
    { name: 'a bad selector label', yaml: svc('ports: [{port: 80}]\nselector: {app: "two words"}'), error: /spec\.selector\.app: invalid label value/ },
    { name: 'an unknown sessionAffinity', yaml: svc('ports: [{port: 80}]\nsessionAffinity: Sticky'), error: /spec\.sessionAffinity: must be one of None, ClientIP/ },
    { name: 'an unknown ipFamily', yaml: svc('ports: [{port: 80}]\nipFamilies: [IPv5]'), error: /spec\.ipFamilies\[0\]: must be one of IPv4, IPv6/ },
    {
      name: 'a bad exportTo annotation',
      yaml: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  annotations: {networking.istio.io/exportTo: "., Shop"}\nspec:\n  ports: [{port: 80}]\n',
      error: /metadata\.annotations\["networking\.istio\.io\/exportTo"\]: "Shop" is not "\.", "\*", "~" or a namespace name/,
    },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(c.yaml);
      assert.equal(resources.length, 0, 'the Service must be rejected');
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }
});

describe('Service: warnings and notices', () => {
  it('warns about (and ignores) a field Kubernetes does not define, with a did-you-mean', () => {
    const { errors, warnings, resources } = validateYaml(svc('ports: [{port: 80, targetport: 8080}]\nselecter: {app: reviews}'));
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 1);
    assert.ok(warnings.some((w) => /spec\.selecter: unknown field "selecter" of a Service spec \(did you mean "selector"\?\); ignored/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /spec\.ports\[0\]\.targetport: unknown field "targetport" of a Service port \(did you mean "targetPort"\?\)/.test(w)), warnings.join('\n'));
  });

  it('internalTrafficPolicy Local and trafficDistribution are applied (no warning); an unknown trafficDistribution is warned about', () => {
    const { warnings } = validateYaml(svc('ports: [{port: 80}]\ninternalTrafficPolicy: Local\ntrafficDistribution: PreferClose'));
    assert.deepEqual(warnings, []);
    for (const v of ['PreferSameZone', 'PreferSameNode']) assert.deepEqual(validateYaml(svc(`ports: [{port: 80}]\ntrafficDistribution: ${v}`)).warnings, []);
    const unknown = validateYaml(svc('ports: [{port: 80}]\ntrafficDistribution: preferclose'));
    assert.equal(unknown.resources.length, 1);
    assert.match(unknown.warnings.join('\n'), /spec\.trafficDistribution: unknown value "preferclose" \(Kubernetes accepts PreferClose, PreferSameZone, PreferSameNode\); it has no effect/);
  });

  it('the networking.istio.io/traffic-distribution annotation, on a Service or a ServiceEntry: any case; an unknown value is warned about', () => {
    const annotated = (kind: string, value: string, spec: string) => `apiVersion: ${kind === 'Service' ? 'v1' : 'networking.istio.io/v1'}\nkind: ${kind}\nmetadata:\n  name: reviews\n  annotations: {networking.istio.io/traffic-distribution: ${value}}\nspec:\n${spec}`;
    const svcSpec = '  ports: [{name: http, port: 80}]\n';
    const seSpec = '  hosts: [reviews.example.com]\n  ports: [{name: http, number: 80, protocol: HTTP}]\n  resolution: DNS\n';
    for (const [kind, spec] of [['Service', svcSpec], ['ServiceEntry', seSpec]] as const) {
      assert.deepEqual(validateYaml(annotated(kind, 'preferSameNode', spec)).warnings, [], kind);
      const bad = validateYaml(annotated(kind, 'nearby', spec));
      assert.equal(bad.resources.length, 1);
      assert.match(bad.warnings.join('\n'), /metadata\.annotations\["networking\.istio\.io\/traffic-distribution"\]: unknown value "nearby" \(Istio reads PreferClose, PreferSameZone, PreferSameNode, in any case\); it has no effect/, kind);
    }
  });
});
