import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import { Cidr, parseIp, parseSocketIp, remoteAddressFromXff, xffEntry } from './ip.ts';

const buf = () => new Uint8Array(16);

describe('IP parsing', () => {
  const rows: [string, 0 | 4 | 6][] = [
    ['10.1.2.3', 4],
    ['0.0.0.0', 4],
    ['255.255.255.255', 4],
    ['256.1.1.1', 0],
    ['1.2.3', 0],
    ['1.2.3.4.5', 0],
    ['01.2.3.4', 0],
    ['1.2.3.4 ', 0],
    ['', 0],
    ['::', 6],
    ['::1', 6],
    ['2001:db8::1', 6],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6],
    ['1:2:3:4:5:6:7:8', 6],
    ['1:2:3:4:5:6:7:8:9', 0],
    ['1::2::3', 0],
    [':1', 0],
    ['1:', 0],
    ['::ffff:10.0.0.1', 6],
    ['64:ff9b::192.0.2.33', 6],
    ['12345::', 0],
    ['g::1', 0],
    ['1:2:3:4:5:6:7::', 6],
    ['::2:3:4:5:6:7:8', 6],
    ['1:2:3:4:5:6:7:8::', 0],
  ];
  for (const [s, v] of rows) {
    it(`"${s}" is ${v === 0 ? 'no address' : `IPv${v}`} (as node:net says)`, () => {
      assert.equal(parseIp(s, buf()), v);
      assert.equal(isIP(s), v, 'agrees with node:net');
    });
  }

  it('a socket’s IPv4-mapped address is IPv4; a zone is dropped', () => {
    const b = buf();
    assert.equal(parseSocketIp('::ffff:10.0.0.7', b), 4);
    assert.deepEqual([...b.slice(0, 4)], [10, 0, 0, 7]);
    assert.equal(parseSocketIp('fe80::1%eth0', b), 6);
    assert.equal(parseIp('::ffff:10.0.0.7', b), 6, 'an X-Forwarded-For entry is taken as written');
  });
});

describe('CIDR ranges (Envoy CidrRange)', () => {
  const rows: [string, string, boolean][] = [
    ['10.0.0.0/8', '10.1.2.3', true],
    ['10.0.0.0/8', '11.1.2.3', false],
    ['10.1.2.3', '10.1.2.3', true],
    ['10.1.2.3', '10.1.2.4', false],
    ['192.168.10.0/24', '192.168.10.255', true],
    ['192.168.10.0/24', '192.168.11.0', false],
    ['10.1.2.3/16', '10.1.200.1', true], // host bits in the range are ignored
    ['0.0.0.0/0', '1.2.3.4', true],
    ['0.0.0.0/0', '::1', false], // never across families
    ['::/0', '1.2.3.4', false],
    ['2001:db8::/32', '2001:db8:1::5', true],
    ['2001:db8::/33', '2001:db8:8000::', false],
    ['2001:db8::/33', '2001:db8:7fff::', true],
    ['10.0.0.0/13', '10.7.255.255', true],
    ['10.0.0.0/13', '10.8.0.0', false],
    ['::ffff:10.0.0.0/104', '10.0.0.1', false],
  ];
  for (const [range, addr, want] of rows) {
    it(`${addr} ${want ? 'in' : 'not in'} ${range}`, () => {
      const c = Cidr.parse(range);
      assert.ok(c);
      const b = buf();
      assert.equal(c.contains(parseIp(addr, b), b), want);
    });
  }
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', 'x/8', '10.0.0.0/a']) {
    it(`"${bad}" is refused`, () => assert.equal(Cidr.parse(bad), undefined));
  }
});

describe('X-Forwarded-For (Envoy getLastAddressFromXFF)', () => {
  const rows: [string, number, string | undefined][] = [
    ['192.0.2.10, 192.0.2.1, 10.0.0.1', 0, '10.0.0.1'],
    ['192.0.2.10, 192.0.2.1, 10.0.0.1', 1, '192.0.2.1'],
    ['192.0.2.10, 192.0.2.1, 10.0.0.1', 2, '192.0.2.10'],
    ['192.0.2.10, 192.0.2.1, 10.0.0.1', 3, undefined],
    ['192.0.2.10,192.0.2.1', 0, '192.0.2.1'],
    ['  192.0.2.10  ', 0, '192.0.2.10'],
    ['192.0.2.10', 1, undefined],
    ['1.2.3.4,', 0, '1.2.3.4,'], // a trailing comma leaves text that is no address
    ['', 0, ''],
  ];
  for (const [xff, skip, want] of rows) {
    it(`"${xff}" skipping ${skip} → ${want}`, () => assert.equal(xffEntry(xff, skip), want));
  }

  it('sidecar (numTrustedProxies unset): the last entry; gateway: the N-th from the right, 0 = the peer', () => {
    const xff = '1.1.1.1, 2.2.2.2, 3.3.3.3';
    assert.equal(remoteAddressFromXff(xff, undefined), '3.3.3.3');
    assert.equal(remoteAddressFromXff(xff, 0), undefined);
    assert.equal(remoteAddressFromXff(xff, 1), '3.3.3.3');
    assert.equal(remoteAddressFromXff(xff, 2), '2.2.2.2');
    assert.equal(remoteAddressFromXff(xff, 4), undefined);
    assert.equal(remoteAddressFromXff(undefined, undefined), undefined);
  });
});
