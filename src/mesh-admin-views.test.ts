import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostAddress, socketAddress } from './mesh-admin-views.ts';

describe('/clusters host addresses', () => {
  it('an endpoint key as Envoy writes the host: IPv6 bracketed, a gateway key without its @locality', () => {
    assert.equal(hostAddress('10.0.0.1:9080'), '10.0.0.1:9080');
    assert.equal(hostAddress('[2001:db8::21]:15443'), '[2001:db8::21]:15443');
    // The same east-west gateway in a second locality is a second host, keyed `address:port@locality`.
    assert.equal(hostAddress('2.2.2.2:15443@us-east/a'), '2.2.2.2:15443');
    assert.equal(hostAddress('[2001:db8::21]:15443@us-east/a'), '[2001:db8::21]:15443');
    assert.deepEqual(socketAddress('[2001:db8::21]:15443@us-east/a'), { address: '2001:db8::21', port_value: 15443 });
    assert.deepEqual(socketAddress('2.2.2.2:15443@r/y'), { address: '2.2.2.2', port_value: 15443 });
  });
});
