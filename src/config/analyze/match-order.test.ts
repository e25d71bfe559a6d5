import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings } from '../../../test/helpers/config.ts';
import { isCatchAllMatch, isCatchAllRule } from './match-order.ts';

const findings = analysisFindings;

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2}}
  - {address: 10.0.0.3, labels: {app: reviews, version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`;

/** Bookinfo's `reviews` VirtualService with the given `http` rules. */
function reviews(http: string): string {
  return `${SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
${http}`;
}

const JASON_V2 = `  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}`;
const ALL_V1 = `  - route:
    - destination: {host: reviews, subset: v1}`;
const MIKE_V3 = `  - match:
    - headers: {end-user: {exact: mike}}
    route:
    - destination: {host: reviews, subset: v3}`;

/** A delegate VirtualService \`reviews-api\` (no hosts) with the given \`http\` rules, as a second document. */
function REVIEWS_API(http: string): string {
  return `
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
${http}`;
}

interface Case {
  name: string;
  yaml: string;
  IST0130: string[];
  IST0131: string[];
}

const cases: Case[] = [
  {
    name: 'Bookinfo reviews-test-v2: the catch-all comes last',
    yaml: reviews(`${JASON_V2}\n${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'a rule after the catch-all (rule without match)',
    yaml: reviews(`${JASON_V2}\n${ALL_V1}\n${MIKE_V3}`),
    IST0130: ['warning spec.http[2]: rule spec.http[2] is unreachable: spec.http[1] matches every request'],
    IST0131: [],
  },
  {
    name: 'a rule after a prefix "/" match',
    yaml: reviews(`  - match:
    - uri: {prefix: /}
    route:
    - destination: {host: reviews, subset: v1}
${JASON_V2}`),
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: spec.http[0] matches every request'],
    IST0131: [],
  },
  {
    name: 'rules after a regex ".*" block (one of two blocks)',
    yaml: reviews(`  - match:
    - headers: {end-user: {exact: jason}}
    - uri: {regex: ".*"}
    route:
    - destination: {host: reviews, subset: v2}
${MIKE_V3}
${ALL_V1}`),
    IST0130: [
      'warning spec.http[1]: rule spec.http[1] is unreachable: spec.http[0] matches every request',
      'warning spec.http[2]: rule spec.http[2] is unreachable: spec.http[0] matches every request',
    ],
    IST0131: [],
  },
  {
    name: 'prefix "/" with a header condition is not a catch-all',
    yaml: reviews(`  - match:
    - uri: {prefix: /}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'sourceLabels alone are not a catch-all (decided per workload)',
    yaml: reviews(`  - match:
    - sourceLabels: {app: productpage, version: v1}
    route:
    - destination: {host: reviews, subset: v2}
${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'a rule whose only match repeats an earlier one',
    yaml: reviews(`${JASON_V2}
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: earlier match blocks (spec.http[0].match[0]) already match every request it matches'],
    IST0131: ['info spec.http[1].match[0]: match block spec.http[1].match[0] is never used: it duplicates spec.http[0].match[0]'],
  },
  {
    name: 'a duplicate block next to a new one: only the block is ineffective',
    yaml: reviews(`${JASON_V2}
  - match:
    - name: jason-again
      headers: {End-User: {exact: jason}}
    - headers: {end-user: {exact: mike}}
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: [],
    IST0131: ['info spec.http[1].match[0]: match block spec.http[1].match[0] is never used: it duplicates spec.http[0].match[0]'],
  },
  {
    name: 'the same conditions in another key order are a duplicate',
    yaml: reviews(`  - match:
    - uri: {prefix: /reviews}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - headers: {end-user: {exact: jason}}
      uri: {prefix: /reviews}
    - uri: {exact: /health}
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: [],
    IST0131: ['info spec.http[1].match[0]: match block spec.http[1].match[0] is never used: it duplicates spec.http[0].match[0]'],
  },
  {
    name: 'a longer prefix after a shorter one (prefix is a string prefix)',
    yaml: reviews(`  - match:
    - uri: {prefix: /reviews}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - uri: {prefix: /reviews/1}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: earlier match blocks (spec.http[0].match[0]) already match every request it matches'],
    IST0131: ['info spec.http[1].match[0]: match block spec.http[1].match[0] is never used: spec.http[0].match[0] already matches every request it matches'],
  },
  {
    name: 'a narrower rule first, then a wider one: clean',
    yaml: reviews(`  - match:
    - uri: {prefix: /reviews/1}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v3}
  - match:
    - uri: {prefix: /reviews}
    route:
    - destination: {host: reviews, subset: v2}
${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'a case-insensitive block after a case-sensitive one: clean',
    yaml: reviews(`  - match:
    - uri: {prefix: /reviews}
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - uri: {prefix: /reviews/1}
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'a case-insensitive prefix covers a longer prefix in any case',
    yaml: reviews(`  - match:
    - uri: {prefix: /Reviews}
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v2}
  - match:
    - uri: {exact: /reviews/1}
    - uri: {prefix: /REVIEWS/2}
    route:
    - destination: {host: reviews, subset: v3}
${ALL_V1}`),
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: earlier match blocks (spec.http[0].match[0]) already match every request it matches'],
    IST0131: [
      'info spec.http[1].match[0]: match block spec.http[1].match[0] is never used: spec.http[0].match[0] already matches every request it matches',
      'info spec.http[1].match[1]: match block spec.http[1].match[1] is never used: spec.http[0].match[0] already matches every request it matches',
    ],
  },
  {
    name: 'different header values: clean',
    yaml: reviews(`${JASON_V2}\n${MIKE_V3}\n${ALL_V1}`),
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'a delegate rule after the catch-all is unreachable too',
    yaml: `${reviews(`${ALL_V1}\n  - delegate: {name: reviews-api}`)}${REVIEWS_API('  - route:\n    - destination: {host: reviews, subset: v2}')}`,
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: spec.http[0] matches every request'],
    IST0131: [],
  },
  {
    name: 'rules after a delegate rule without match stay reachable when the delegate matches only some requests',
    yaml: `${reviews(`  - delegate: {name: reviews-api}\n${ALL_V1}`)}${REVIEWS_API(`  - match:\n    - uri: {prefix: /api}\n    route:\n    - destination: {host: reviews, subset: v2}`)}`,
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'rules after a delegate rule without match are unreachable when the delegate has a catch-all',
    yaml: `${reviews(`  - delegate: {name: reviews-api}\n${ALL_V1}`)}${REVIEWS_API('  - route:\n    - destination: {host: reviews, subset: v2}')}`,
    IST0130: ['warning spec.http[1]: rule spec.http[1] is unreachable: spec.http[0] matches every request'],
    IST0131: [],
  },
  {
    name: 'a rule repeating the match of a delegate rule stays reachable (requests the delegate does not match fall through)',
    yaml: `${reviews(`  - match:\n    - uri: {prefix: /api}\n    delegate: {name: reviews-api}\n  - match:\n    - uri: {prefix: /api}\n    route:\n    - destination: {host: reviews, subset: v3}\n${ALL_V1}`)}${REVIEWS_API(`  - match:\n    - uri: {prefix: /api/v2}\n    route:\n    - destination: {host: reviews, subset: v2}`)}`,
    IST0130: [],
    IST0131: [],
  },
  {
    name: 'TCP rules (Istio: duplicate-tcp-match, duplicate-empty-tcp): a repeated port match and a second rule without match',
    yaml: `${SERVICES}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [reviews]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: reviews, port: {number: 9080}, subset: v1}}]
  - match: [{port: 31400}, {port: 31401}]
    route: [{destination: {host: reviews, port: {number: 9080}, subset: v2}}]
  - match: [{port: 31400}]
    route: [{destination: {host: reviews, port: {number: 9080}, subset: v2}}]
  - route: [{destination: {host: reviews, port: {number: 9080}, subset: v1}}]
  - route: [{destination: {host: reviews, port: {number: 9080}, subset: v2}}]`,
    IST0130: [
      'warning spec.tcp[2]: rule spec.tcp[2] is unreachable: earlier rules have all its match blocks',
      'warning spec.tcp[4]: rule spec.tcp[4] is unreachable: only the last rule may have no match, and spec.tcp[3] has none',
    ],
    IST0131: [
      'info spec.tcp[1].match[0]: match block spec.tcp[1].match[0] is never used: it duplicates spec.tcp[0].match[0]',
      'info spec.tcp[2].match[0]: match block spec.tcp[2].match[0] is never used: it duplicates spec.tcp[0].match[0]',
    ],
  },
  {
    name: 'TLS rules (Istio: tls-routing): the same port and SNI hosts twice',
    yaml: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-routing}
spec:
  hosts: [www1.googleapis.com, api1.facebook.com]
  tls:
  - match: [{port: 2443, sniHosts: [www1.googleapis.com]}]
    route: [{destination: {host: www1.googleapis.com}}]
  - match: [{sniHosts: [www1.googleapis.com], port: 2443}, {port: 8443, sniHosts: [www1.googleapis.com]}]
    route: [{destination: {host: api1.facebook.com}}]
  - match: [{port: 2443, sniHosts: [www1.googleapis.com]}]
    route: [{destination: {host: api1.facebook.com}}]`,
    IST0130: ['warning spec.tls[2]: rule spec.tls[2] is unreachable: earlier rules have all its match blocks'],
    IST0131: [
      'info spec.tls[1].match[0]: match block spec.tls[1].match[0] is never used: it duplicates spec.tls[0].match[0]',
      'info spec.tls[2].match[0]: match block spec.tls[2].match[0] is never used: it duplicates spec.tls[0].match[0]',
    ],
  },
];

describe('IST0130 VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch', () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(findings(c.yaml, 'IST0130'), c.IST0130, 'IST0130');
      assert.deepEqual(findings(c.yaml, 'IST0131'), c.IST0131, 'IST0131');
    });
  }
});

describe('isCatchAllMatch (mirrors the route compiler)', () => {
  const table: { match: Parameters<typeof isCatchAllMatch>[0]; catchAll: boolean }[] = [
    { match: undefined, catchAll: true },
    { match: {}, catchAll: true },
    { match: { uri: { prefix: '/' } }, catchAll: true },
    { match: { uri: { prefix: '' } }, catchAll: true },
    { match: { uri: { regex: '.*' } }, catchAll: true },
    { match: { uri: { regex: '*' } }, catchAll: true },
    { match: { name: 'all', ignoreUriCase: true }, catchAll: true },
    { match: { uri: { prefix: '/api' } }, catchAll: false },
    { match: { uri: { exact: '/' } }, catchAll: false },
    { match: { method: { exact: 'GET' } }, catchAll: false },
    { match: { headers: { 'end-user': { exact: 'jason' } } }, catchAll: false },
    { match: { withoutHeaders: { 'end-user': { exact: 'jason' } } }, catchAll: false },
    { match: { queryParams: { v: { exact: '2' } } }, catchAll: false },
    { match: { port: 9080 }, catchAll: false },
    { match: { sourceLabels: { app: 'productpage' } }, catchAll: false },
    { match: { sourceNamespace: 'default' }, catchAll: false },
    { match: { gateways: ['mesh'] }, catchAll: false },
  ];
  for (const t of table) {
    it(`${JSON.stringify(t.match)} → ${t.catchAll}`, () => {
      assert.equal(isCatchAllMatch(t.match), t.catchAll);
    });
  }

  it('a rule is a catch-all with no match, an empty match list, or one catch-all block', () => {
    assert.equal(isCatchAllRule({}), true);
    assert.equal(isCatchAllRule({ match: [] }), true);
    assert.equal(isCatchAllRule({ match: [{ uri: { prefix: '/api' } }, { uri: { prefix: '/' } }] }), true);
    assert.equal(isCatchAllRule({ match: [{ uri: { prefix: '/api' } }] }), false);
  });
});
