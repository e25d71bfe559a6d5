import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analysisFindings, doc } from '../../../test/helpers/config.ts';

const NET = 'networking.istio.io/v1';
const ROOT = doc(NET, 'VirtualService', 'reviews', 'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /api}}]\n  delegate: {name: reviews-api, namespace: team}\n- route: [{destination: {host: reviews}}]');
const child = (extra = '') => doc(NET, 'VirtualService', 'reviews-api', `${extra}http:\n- route: [{destination: {host: reviews.default.svc.cluster.local}}]`, 'team');

describe('MESHLET0102 delegate VirtualService missing or not visible', () => {
  const cases: { name: string; yaml: string; expect: string[] }[] = [
    { name: 'a root and its delegate: clean', yaml: [ROOT, child()].join('---\n'), expect: [] },
    {
      name: 'a missing delegate',
      yaml: ROOT,
      expect: ['warning spec.http[0].delegate: no delegate VirtualService team/reviews-api (a VirtualService without hosts): this rule is left out of the routes, as Istio does'],
    },
    {
      name: 'a delegate exported only to its own namespace',
      yaml: [ROOT, child('exportTo: ["."]\n')].join('---\n'),
      expect: ['warning spec.http[0].delegate: the delegate VirtualService team/reviews-api is not exported to namespace default: this rule is left out of the routes, as Istio does'],
    },
    { name: 'a delegate exported to the root\'s namespace', yaml: [ROOT, child('exportTo: [default]\n')].join('---\n'), expect: [] },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(analysisFindings(c.yaml, 'MESHLET0102'), c.expect));
});
