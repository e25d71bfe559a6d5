import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCel } from './cel.ts';

describe('CEL syntax (Istio parses Telemetry access-log filters)', () => {
  const valid = [
    'response.code >= 400',
    "connection.mtls && request.url_path.contains('v1beta3')",
    'response.code',
    'request.headers["x-user"] == "jason" || !has(request.headers.debug)',
    'response.code in [500, 503] ? true : false',
    '-1 < 2u && 0x1F == 31 && 1.5e3 > .5',
    'size(request.headers) > 0 && {"a": 1, "b": 2}["a"] == 1',
    "r'\\d+' != b\"bytes\" && '''multi\nline''' != \"\"",
    'google.protobuf.Duration{seconds: 1} != null',
    '[1, 2, 3,].all(x, x > 0) // a trailing comment',
    '!!true',
    '-9223372036854775808 < 0 && 18446744073709551615u > 0u',
  ];
  for (const e of valid) it(`parses ${JSON.stringify(e)}`, () => assert.equal(checkCel(e), undefined));

  const invalid: [string, RegExp][] = [
    [')++++', /expected an expression at 0, got "\)"/],
    ['', /expected an expression at 0, got the end/],
    ['response.code >=', /expected an expression at 16, got the end/],
    ['a.b(', /expected an expression at 4, got the end/],
    ['a b', /unexpected "b" at 2/],
    ['"unterminated', /unterminated string/],
    ['a ? b', /expected ":"/],
    ['has(a)', /invalid argument to has\(\) macro/],
    ['if == 1', /"if" is a reserved word/],
    ['a # b', /unexpected character "#"/],
    ['1x', /invalid number/],
    ['f(a,)', /unexpected "," before "\)"/],
    // Literals are checked as cel-go's parser checks them (invalid int literal, invalid escape).
    ['9223372036854775808 > 0', /integer literal 9223372036854775808 out of range/],
    ['18446744073709551616u > 0u', /out of range/],
    [String.raw`"\q" == ""`, /invalid escape/],
  ];
  for (const [e, why] of invalid) {
    it(`refuses ${JSON.stringify(e)}`, () => {
      const problem = checkCel(e);
      assert.ok(problem !== undefined && why.test(problem), `${problem}`);
    });
  }
});
