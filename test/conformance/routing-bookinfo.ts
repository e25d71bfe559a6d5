/**
 * Hand-written routing cases from Istio's Bookinfo sample (samples/bookinfo/networking, unchanged
 * in test/fixtures/istio/bookinfo): what Istio's traffic-management tasks show each VirtualService
 * doing to productpage's calls, with the manifest and destination-rule-all.yaml applied as the
 * tasks apply them.
 */
import { fileURLToPath } from 'node:url';
import type { Outcome, Request, RoutingCase } from './routing-model.ts';

const BOOKINFO = fileURLToPath(new URL('../fixtures/istio/bookinfo/', import.meta.url));
const KUBE = `${BOOKINFO}platform/kube/bookinfo.yaml`;
const NET = `${BOOKINFO}networking/`;
const DR_ALL = `${NET}destination-rule-all.yaml`;
const JASON = { 'end-user': 'jason' };

/** Cases of one Bookinfo networking file, applied with the manifest and destination-rule-all.yaml as the tasks do. */
function bookinfo(file: string, requests: readonly [string, Request, Outcome][], extraFiles: readonly string[] = [DR_ALL]): RoutingCase[] {
  return requests.map(([what, request, expect]) => ({
    test: 'Bookinfo',
    name: `${file}: ${what}`,
    source: `samples/bookinfo/networking/${file}`,
    config: '',
    files: [KUBE, ...extraFiles, `${NET}${file}`],
    request,
    expect,
  }));
}

const r = (svc: string, headers?: Record<string, string>, draw?: number): Request => ({ authority: `${svc}:9080`, headers, draw });
const to = (svc: string, subset: string): string => `${svc}.default.svc.cluster.local:9080|${subset}`;

export const bookinfoCases: RoutingCase[] = [
  ...bookinfo(
    'virtual-service-all-v1.yaml',
    ['productpage', 'reviews', 'ratings', 'details'].map((s) => [`${s} → v1`, r(s), { to: to(s, 'v1') }] as [string, Request, Outcome]),
  ),
  ...bookinfo('virtual-service-reviews-test-v2.yaml', [
    ['jason → reviews v2', r('reviews', JASON), { to: to('reviews', 'v2') }],
    ['no end-user → v1', r('reviews'), { to: to('reviews', 'v1') }],
    ['end-user mike → v1', r('reviews', { 'end-user': 'mike' }), { to: to('reviews', 'v1') }],
  ]),
  ...bookinfo('virtual-service-reviews-jason-v2-v3.yaml', [
    ['jason → v2', r('reviews', JASON), { to: to('reviews', 'v2') }],
    ['everyone else → v3', r('reviews'), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-50-v3.yaml', [
    ['the first half of the draws → v1', r('reviews', undefined, 49), { to: to('reviews', 'v1') }],
    ['the second half → v3', r('reviews', undefined, 50), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-80-20.yaml', [
    ['80% → v1', r('reviews', undefined, 79), { to: to('reviews', 'v1') }],
    ['20% → v2', r('reviews', undefined, 80), { to: to('reviews', 'v2') }],
  ]),
  ...bookinfo('virtual-service-reviews-90-10.yaml', [
    ['90% → v1', r('reviews', undefined, 89), { to: to('reviews', 'v1') }],
    ['10% → v2', r('reviews', undefined, 90), { to: to('reviews', 'v2') }],
  ]),
  ...bookinfo('virtual-service-reviews-v2-v3.yaml', [
    ['50% → v2', r('reviews', undefined, 49), { to: to('reviews', 'v2') }],
    ['50% → v3', r('reviews', undefined, 50), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-reviews-v3.yaml', [['reviews → v3', r('reviews'), { to: to('reviews', 'v3') }]]),
  ...bookinfo('virtual-service-details-v2.yaml', [['details → v2', r('details'), { to: to('details', 'v2') }]]),
  ...bookinfo('virtual-service-ratings-test-delay.yaml', [
    ['jason: ratings v1 after a 7s delay, every time', r('ratings', JASON), { to: to('ratings', 'v1'), fault: 'delay 7000ms @100%' }],
    ['everyone else: no delay', r('ratings'), { to: to('ratings', 'v1'), fault: 'none' }],
  ]),
  ...bookinfo('virtual-service-ratings-test-abort.yaml', [
    ['jason: ratings answers 500, every time', r('ratings', JASON), { fault: 'abort 500 @100%' }],
    ['everyone else: no fault', r('ratings'), { to: to('ratings', 'v1'), fault: 'none' }],
  ]),
  ...bookinfo('fault-injection-details-v1.yaml', [['details: 555, every time (the first rule has no match)', r('details'), { to: to('details', 'v1'), fault: 'abort 555 @100%' }]], []),
  ...bookinfo('virtual-service-ratings-db.yaml', [
    ['ratings → v2', r('ratings'), { to: to('ratings', 'v2') }],
    ['reviews → v3', r('reviews'), { to: to('reviews', 'v3') }],
  ]),
  ...bookinfo('virtual-service-ratings-mysql.yaml', [['ratings → v2-mysql', r('ratings'), { to: to('ratings', 'v2-mysql') }]]),
  ...bookinfo('virtual-service-ratings-mysql-vm.yaml', [['ratings → v2-mysql-vm', r('ratings'), { to: to('ratings', 'v2-mysql-vm') }]]),
  ...bookinfo('bookinfo-gateway.yaml', [['a mesh call to productpage ignores the gateway VirtualService (hosts "*")', r('productpage'), { rule: 'default', to: 'productpage.default.svc.cluster.local:9080' }]], []),
  ...bookinfo('egress-rule-google-apis.yaml', [['http://www.googleapis.com (port 80) goes to its port 443', { authority: 'www.googleapis.com' }, { to: 'www.googleapis.com:443' }]], []),
];
