import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandTrustDomainAliases, replaceTrustDomainAliases, trustDomainBundle } from './trust-domain.ts';

// Istio's TestReplaceTrustDomainAliases (pilot/pkg/security/trustdomain/bundle_test.go), every row.
describe('trust-domain aliases for principals (Istio TestReplaceTrustDomainAliases)', () => {
  const rows: { name: string; td: string; aliases: string[]; principals: string[]; expect: string[] }[] = [
    { name: 'no aliases', td: 'cluster.local', aliases: [], principals: ['cluster.local/ns/foo/sa/bar'], expect: ['cluster.local/ns/foo/sa/bar'] },
    { name: 'principal *', td: 'cluster.local', aliases: [], principals: ['*'], expect: ['*'] },
    { name: 'principal with * trust domain', td: 'cluster.local', aliases: [], principals: ['*/ns/foo/sa/bar'], expect: ['*/ns/foo/sa/bar'] },
    { name: 'one alias, one principal', td: 'td2', aliases: ['td1'], principals: ['td1/ns/foo/sa/bar'], expect: ['td2/ns/foo/sa/bar', 'td1/ns/foo/sa/bar'] },
    {
      name: 'one alias, two principals',
      td: 'td1',
      aliases: ['cluster.local'],
      principals: ['cluster.local/ns/foo/sa/bar', 'cluster.local/ns/yyy/sa/zzz'],
      expect: ['td1/ns/foo/sa/bar', 'cluster.local/ns/foo/sa/bar', 'td1/ns/yyy/sa/zzz', 'cluster.local/ns/yyy/sa/zzz'],
    },
    { name: 'principals with * kept', td: 'td1', aliases: ['cluster.local'], principals: ['*/ns/foo/sa/bar', '*sa/zzz', '*'], expect: ['*/ns/foo/sa/bar', '*sa/zzz', '*'] },
    {
      name: 'two aliases, two principals',
      td: 'td2',
      aliases: ['td1', 'cluster.local'],
      principals: ['cluster.local/ns/foo/sa/bar', 'td1/ns/yyy/sa/zzz'],
      expect: ['td2/ns/foo/sa/bar', 'td1/ns/foo/sa/bar', 'cluster.local/ns/foo/sa/bar', 'td2/ns/yyy/sa/zzz', 'td1/ns/yyy/sa/zzz', 'cluster.local/ns/yyy/sa/zzz'],
    },
    {
      name: '* prefix in trust domain',
      td: 'td2',
      aliases: ['foo-td1', 'cluster.local'],
      principals: ['*-td1/ns/foo/sa/bar'],
      expect: ['td2/ns/foo/sa/bar', '*-td1/ns/foo/sa/bar', 'cluster.local/ns/foo/sa/bar'],
    },
    { name: 'no trust domain matches', td: 'td1', aliases: ['td2'], principals: ['some-td/ns/foo/sa/bar'], expect: ['some-td/ns/foo/sa/bar'] },
    { name: 'matches one alias', td: 'td1', aliases: ['td2', 'some-td'], principals: ['some-td/ns/foo/sa/bar'], expect: ['td1/ns/foo/sa/bar', 'td2/ns/foo/sa/bar', 'some-td/ns/foo/sa/bar'] },
    {
      name: 'one of two principals matches an alias',
      td: 'new-td',
      aliases: ['td2', 'td3'],
      principals: ['td1/ns/some-ns/sa/some-sa', 'td2/ns/foo/sa/bar'],
      expect: ['td1/ns/some-ns/sa/some-sa', 'new-td/ns/foo/sa/bar', 'td2/ns/foo/sa/bar', 'td3/ns/foo/sa/bar'],
    },
    { name: 'empty trust domain', td: 'new-td', aliases: ['td2', 'td3'], principals: ['/ns/some-ns/sa/some-sa'], expect: ['/ns/some-ns/sa/some-sa'] },
    { name: 'no duplicates for a * trust domain', td: 'new-td', aliases: ['old-td'], principals: ['*-td/ns/some-ns/sa/some-sa'], expect: ['*-td/ns/some-ns/sa/some-sa'] },
    { name: 'cluster.local means the local trust domain', td: 'example.com', aliases: [], principals: ['cluster.local/ns/a/sa/b'], expect: ['example.com/ns/a/sa/b'] },
    { name: 'not a 5-part principal', td: 'td1', aliases: ['td2'], principals: ['td2/ns/a'], expect: ['td2/ns/a'] },
  ];
  for (const r of rows) {
    it(r.name, () => assert.deepEqual(replaceTrustDomainAliases(trustDomainBundle(r.td, r.aliases), r.principals), r.expect));
  }
});

describe('trust-domain aliases for trustDomains (Bundle.ExpandTrustDomainAliases)', () => {
  const rows: { td: string; aliases: string[]; values: string[]; expect: string[] }[] = [
    { td: 'cluster.local', aliases: [], values: ['cluster.local'], expect: ['cluster.local'] },
    { td: 'td1', aliases: ['td2'], values: ['td2'], expect: ['td1', 'td2'] },
    { td: 'td1', aliases: ['td2'], values: ['td1', 'other', 'td2'], expect: ['td1', 'td2', 'other'] },
    { td: 'td1', aliases: ['td2'], values: ['td*'], expect: ['td*'] },
    // cluster.local is only special for principals: as a trust domain value it is literal unless in the bundle.
    { td: 'example.com', aliases: [], values: ['cluster.local'], expect: ['cluster.local'] },
  ];
  for (const r of rows) {
    it(`${r.td}+[${r.aliases}] ${r.values}`, () => assert.deepEqual(expandTrustDomainAliases(trustDomainBundle(r.td, r.aliases), r.values), r.expect));
  }
});
