import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';

const findings = (yaml: string): string[] => analysisFindings(yaml, 'IST0177', true);

/** A DNS ServiceEntry for `host` with one port. */
function se(name: string, port: string, o: { namespace?: string; host?: string; exportTo?: string } = {}): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: ${o.namespace ?? 'default'}}
spec:
  hosts: [${o.host ?? 'example.com'}]
  ports: [${port}]
  resolution: DNS
  location: MESH_EXTERNAL${o.exportTo === undefined ? '' : `\n  exportTo: ${o.exportTo}`}`;
}

const HTTPS = '{name: https-13835, number: 13835, protocol: HTTPS}';
const HTTP = '{name: http-13835, number: 13835, protocol: HTTP}';

describe('IST0177 ServiceEntries with conflicting protocols', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    {
      name: 'HTTPS and HTTP on one host and port (Istio: se-https, se-http): both told, naming the one used',
      yaml: [se('se-https', HTTPS), se('se-http', HTTP), se('se-no-conflict', '{name: https-443, number: 443, protocol: HTTPS}', { host: 'other.com' })].join('\n---\n'),
      expect: [
        'warning ServiceEntry default/se-https metadata.name: ServiceEntries default/se-https, default/se-http declare host example.com port 13835 with different protocols (HTTP, HTTPS); one declaration is used for the host (meshlet: the oldest, default/se-https)',
        'warning ServiceEntry default/se-http metadata.name: ServiceEntries default/se-https, default/se-http declare host example.com port 13835 with different protocols (HTTP, HTTPS); one declaration is used for the host (meshlet: the oldest, default/se-https)',
      ],
    },
    { name: 'the same protocol twice: clean', yaml: [se('a', HTTPS), se('b', HTTPS)].join('\n---\n'), expect: [] },
    { name: 'different ports: clean', yaml: [se('a', HTTPS), se('b', '{name: http, number: 80, protocol: HTTP}')].join('\n---\n'), expect: [] },
    {
      name: 'each exported to its own namespace only (Istio: se-ns1, se-ns2): clean',
      yaml: [se('se-ns1', HTTPS, { namespace: 'ns1', exportTo: '["."]' }), se('se-ns2', HTTP, { namespace: 'ns2', exportTo: '["."]' })].join('\n---\n'),
      expect: [],
    },
    {
      name: 'one exported to its namespace, one everywhere: they meet in that namespace',
      yaml: [se('se-ns1', HTTPS, { namespace: 'ns1', exportTo: '["."]' }), se('se-all', HTTP, { namespace: 'ns2' })].join('\n---\n'),
      expect: [
        'warning ServiceEntry ns1/se-ns1 metadata.name: ServiceEntries ns1/se-ns1, ns2/se-all declare host example.com port 13835 with different protocols (HTTP, HTTPS); one declaration is used for the host (meshlet: the oldest, ns1/se-ns1)',
        'warning ServiceEntry ns2/se-all metadata.name: ServiceEntries ns1/se-ns1, ns2/se-all declare host example.com port 13835 with different protocols (HTTP, HTTPS); one declaration is used for the host (meshlet: the oldest, ns1/se-ns1)',
      ],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(findings(c.yaml), c.expect));
});
