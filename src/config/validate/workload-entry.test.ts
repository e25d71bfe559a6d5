import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doc, validateYaml } from '../../../test/helpers/config.ts';
import type { WorkloadEntrySpec } from '../types/networking.ts';

const we = (spec: string) => doc('networking.istio.io/v1', 'WorkloadEntry', 'details-vm', spec, 'bookinfo');

describe('WorkloadEntry: valid entries', () => {
  const cases: { name: string; spec: string }[] = [
    {
      name: 'a VM running details (virtual machine task)',
      spec: 'address: 2.2.2.2\nlabels:\n  app: details-legacy\n  instance-id: vm1\nserviceAccount: details-legacy\nlocality: us-west1/zone1\nnetwork: vm-network\nweight: 3',
    },
    { name: 'a DNS name address with named ports', spec: 'address: vm1.example.com\nports:\n  http: 8080\n  grpc: 9090\nlabels: {app: details}' },
    { name: 'an IPv6 address', spec: 'address: "2001:db8::1"' },
    { name: 'a unix domain socket', spec: 'address: unix:///var/run/example/socket' },
    { name: 'an abstract unix socket', spec: 'address: "unix://@details"' },
    { name: 'a full locality and weight 0', spec: 'address: 10.0.0.5\nlocality: us-central1/us-central1-a/rack-7\nweight: 0' },
    { name: 'the largest weight', spec: 'address: 10.0.0.5\nweight: 4294967295' },
    { name: 'a trailing-dot FQDN', spec: 'address: details.example.com.' },
  ];
  for (const c of cases) {
    it(`accepts ${c.name}`, () => {
      const { errors, warnings, resources } = validateYaml(we(c.spec));
      assert.deepEqual(errors, []);
      assert.deepEqual(warnings, []);
      assert.equal(resources.length, 1);
    });
  }

  it('returns the typed spec', () => {
    const { resources } = validateYaml(we(cases[1]?.spec ?? ''));
    assert.deepEqual(resources[0]?.spec as WorkloadEntrySpec, {
      address: 'vm1.example.com',
      ports: { http: 8080, grpc: 9090 },
      labels: { app: 'details' },
    });
  });
});

describe('WorkloadEntry: rejected entries', () => {
  const cases: { name: string; spec: string; error: RegExp }[] = [
    { name: 'no address and no network', spec: 'labels: {app: details}', error: /spec\.address: is required \(or set network\)/ },
    { name: 'an empty address and no network', spec: 'address: ""', error: /spec\.address: is required \(or set network\)/ },
    { name: 'an address with a port', spec: 'address: 10.0.0.1:8080', error: /spec\.address: "10\.0\.0\.1:8080" is not an IP address, a DNS name or a unix:\/\/ path/ },
    { name: 'an address with a scheme', spec: 'address: http://vm1.example.com', error: /spec\.address: "http:\/\/vm1\.example\.com" is not an IP address/ },
    { name: 'a string that only looks like IPv6', spec: 'address: "dead:beef"', error: /spec\.address: "dead:beef" is not an IP address, a DNS name or a unix:\/\/ path/ },
    { name: 'an all-numeric top-level label', spec: 'address: 10.0.0.300', error: /spec\.address: "10\.0\.0\.300" is not an IP address/ },
    { name: 'a relative unix path', spec: 'address: unix://var/run/sock', error: /spec\.address: "unix:\/\/var\/run\/sock": the socket path must be absolute and name a file/ },
    { name: 'a unix directory', spec: 'address: unix:///var/run/', error: /the socket path must be absolute and name a file/ },
    { name: 'a unix address without a path', spec: 'address: "unix://"', error: /spec\.address: unix:\/\/ address has no path/ },
    { name: 'ports on a unix address', spec: 'address: unix:///var/run/sock\nports: {http: 8080}', error: /spec\.ports: must be empty for a unix:\/\/ address/ },
    { name: 'port 0', spec: 'address: 10.0.0.1\nports: {http: 0}', error: /spec\.ports\.http: must be >= 1, got 0/ },
    { name: 'port over 65535', spec: 'address: 10.0.0.1\nports: {http: 65536}', error: /spec\.ports\.http: must be <= 65535/ },
    { name: 'port as a string', spec: 'address: 10.0.0.1\nports: {http: "8080"}', error: /spec\.ports\.http: must be an integer/ },
    { name: 'a port name that is not a DNS label', spec: 'address: 10.0.0.1\nports: {HTTP_Web: 8080}', error: /spec\.ports\.HTTP_Web: invalid port name "HTTP_Web"/ },
    { name: 'a bad label key', spec: 'address: 10.0.0.1\nlabels: {"-app": details}', error: /spec\.labels\["-app"\]: invalid label key/ },
    { name: 'a bad label value', spec: 'address: 10.0.0.1\nlabels: {app: "details vm"}', error: /spec\.labels\.app: invalid label value "details vm"/ },
    { name: 'a locality with four parts', spec: 'address: 10.0.0.1\nlocality: a/b/c/d', error: /spec\.locality: locality "a\/b\/c\/d" has more than three parts/ },
    { name: 'a locality with an empty zone', spec: 'address: 10.0.0.1\nlocality: us-west1//rack1', error: /spec\.locality: locality "us-west1\/\/rack1" has an empty region, zone or subzone/ },
    { name: 'a negative weight', spec: 'address: 10.0.0.1\nweight: -1', error: /spec\.weight: must be >= 0/ },
    { name: 'a weight above uint32', spec: 'address: 10.0.0.1\nweight: 4294967296', error: /spec\.weight: must be <= 4294967295/ },
    { name: 'a fractional weight', spec: 'address: 10.0.0.1\nweight: 1.5', error: /spec\.weight: must be an integer/ },
    { name: 'a long service account', spec: `address: 10.0.0.1\nserviceAccount: ${'a'.repeat(254)}`, error: /spec\.serviceAccount: must be at most 253 characters/ },
    { name: 'an unknown field', spec: 'address: 10.0.0.1\nport: {http: 80}', error: /spec\.port: unknown field "port" \(did you mean "ports"\?\)/ },
  ];
  for (const c of cases) {
    it(`rejects ${c.name}`, () => {
      const { errors, resources } = validateYaml(we(c.spec));
      assert.equal(resources.length, 0, 'the resource must be rejected');
      assert.ok(errors.some((e) => c.error.test(e)), `expected ${c.error} in:\n${errors.join('\n')}`);
    });
  }
});

describe('WorkloadEntry: accepted with warnings', () => {
  it('warns when the address is left to a network gateway', () => {
    const { errors, warnings, resources } = validateYaml(we('network: network2\nlabels: {app: details}'));
    assert.deepEqual(errors, []);
    assert.equal(resources.length, 1);
    assert.match(warnings[0] ?? '', /spec\.address: is unset with network "network2": .*meshlet cannot/);
  });
});
