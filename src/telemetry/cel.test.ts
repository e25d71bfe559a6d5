import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CelCompileError, CelDuration, CelEvalError, compileCel } from './cel.ts';

/** A plain activation: top-level names from an object. */
const env = (vars: Record<string, unknown>) => ({ resolve: (n: string) => (Object.hasOwn(vars, n) ? vars[n] : undefined) });

const vars = {
  request: Object.assign(Object.create(null), {
    host: 'reviews.default.svc.cluster.local:9080',
    url_path: '/api/v1beta3/items',
    method: 'GET',
    headers: Object.assign(Object.create(null), { 'user-agent': 'curl/8.5.0', 'x-user': 'jason' }),
    size: 120n,
    duration: new CelDuration(1500),
  }),
  response: Object.assign(Object.create(null), { code: 503n, grpc_status: 14n }),
  destination: Object.assign(Object.create(null), { port: 9080n }),
  connection: Object.assign(Object.create(null), { mtls: true }),
  ratio: 0.25,
  list: [1n, 2n, 3n],
};

describe('CEL evaluation', () => {
  const cases: [string, unknown][] = [
    // Istio docs and tests: access-log filters and tagOverrides values.
    ['response.code >= 400', true],
    ['response.code >= 500 && response.code < 600', true],
    ['response.code == 200', false],
    ['request.host', 'reviews.default.svc.cluster.local:9080'],
    ['string(destination.port)', '9080'],
    ["request.headers['user-agent']", 'curl/8.5.0'],
    ["connection.mtls && request.url_path.contains('v1beta3')", true],
    ['request.headers["x-user"] == "jason" || !has(request.headers.debug)', true],
    ['has(request.headers.debug)', false],
    ['has(request.headers.x_missing) || response.code in [500, 503]', true],
    ["request.url_path.startsWith('/api/') && request.url_path.endsWith('/items')", true],
    ["request.url_path.matches('^/api/v[0-9]+')", true],
    ["matches(request.method, '(?i)^get$')", true],
    ['response.code >= 500 ? "error" : "ok"', 'error'],
    ['int("42") + 1', 43n],
    ['double(request.size) / 2.0', 60],
    ['size(request.url_path)', 18n],
    ["request.url_path.size() > 5u", true],
    ['size(request.headers)', 2n],
    ['size([1, 2, 3])', 3n],
    ['"x-user" in request.headers', true],
    ['2 in list', true],
    ['request.duration > duration("1s")', true],
    ['string(request.duration)', '1.5s'],
    ['{"a": 1, "b": 2}["b"]', 2n],
    ['1 == 1.0', true],
    ['ratio < 1', true],
    ['-7 / 2', -3n],
    ['-7 % 2', -1n],
    ['"a" + "b" == "ab"', true],
    ['[1, 2] + [3] == list', true],
    ["b'abc' == bytes('abc')", true],
    ['"\\x41\\u00e9\\n" == "A\u00e9\\n"', true],
    ['list.all(x, x > 0)', true],
    ['list.exists(x, x == 2)', true],
    ['list.exists_one(x, x > 1)', false],
    ['list.map(x, x * 2)', [2n, 4n, 6n]],
    ['list.filter(x, x % 2 == 1)', [1n, 3n]],
    ['!false && !!true', true],
    ['uint(5)', 5n],
    ['timestamp("2026-01-02T03:04:05Z") < timestamp("2026-01-02T03:04:06.5Z")', true],
    // Error absorption: false && error is false, true || error is true.
    ['false && missing.attr', false],
    ['missing.attr && false', false],
    ['true || response.nope', true],
    ['response.nope || true', true],
  ];
  for (const [expr, want] of cases) {
    it(`${expr} → ${typeof want === 'bigint' ? `${want}n` : JSON.stringify(want, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))}`, () => {
      assert.deepEqual(compileCel(expr).evaluate(env(vars)), want);
    });
  }

  const errors: [string, RegExp][] = [
    ['missing.attr', /no such attribute: missing/],
    ['response.nope', /no such key: "nope"/],
    ["request.headers['x-none']", /no such key: x-none/],
    ['response.code + 1.5', /no matching overload: int \+ double/],
    ['response.code && true', /needs a bool, got int/],
    ['1 / 0', /division by zero/],
    ['9223372036854775807 + 1', /integer overflow/],
    ['int("4x")', /cannot parse/],
    ['list[5]', /index out of range: 5/],
    ['request.host < 3', /cannot be ordered/],
    ['size(1)', /no matching overload: size\(int\)/],
    ['missing.attr || false', /no such attribute/],
    ['response.code ? 1 : 2', /needs a bool/],
    ['request.host.port', /no such field "port" on a string/],
  ];
  for (const [expr, why] of errors) {
    it(`${expr} is an error (${why.source})`, () => {
      const c = compileCel(expr);
      assert.throws(() => c.evaluate(env(vars)), (e: unknown) => e instanceof CelEvalError && why.test(e.message));
      assert.equal(c.test(env(vars)), false, 'a failing filter is false');
      assert.equal(c.text(env(vars)), undefined, 'a failing tag value has no text');
    });
  }
});

describe('CEL compile errors name the expression and the place', () => {
  const bad: [string, RegExp][] = [
    ['response.code >=', /invalid CEL expression "response.code >=": expected an expression at 16, got the end/],
    ['a b', /unexpected "b" at 2/],
    ['has(a)', /invalid argument to has\(\) macro/],
    ['lower(request.host)', /unknown function lower\(\) at 0/],
    ['request.host.toLower()', /unknown function .toLower\(\) at 12/],
    ['size(1, 2)', /size\(\) takes 1 argument, got 2, at 0/],
    ["request.host.startsWith('a', 'b')", /.startsWith\(\) takes 1 argument, got 2/],
    ["request.host.matches('[')", /invalid regular expression "\[".* at 21/],
    ['list.all(1, true)', /all\(\) takes a variable name and an expression/],
    ['google.protobuf.Duration{seconds: 1}', /message construction is not supported/],
    ['"\\q"', /invalid escape/],
    ['99999999999999999999', /out of range/],
  ];
  for (const [expr, why] of bad) {
    it(`refuses ${JSON.stringify(expr)}`, () => {
      assert.throws(() => compileCel(expr), (e: unknown) => e instanceof CelCompileError && e.expression === expr && why.test(e.message));
    });
  }
});

describe('CEL results as Envoy uses them', () => {
  it('test() is true only for the bool true', () => {
    assert.equal(compileCel('response.code >= 400').test(env(vars)), true);
    assert.equal(compileCel('response.code').test(env(vars)), false, 'a non-bool is false');
  });
  it('text() prints as Expr::print does', () => {
    assert.equal(compileCel('response.code').text(env(vars)), '503');
    assert.equal(compileCel('connection.mtls').text(env(vars)), 'true');
    assert.equal(compileCel('request.host').text(env(vars)), 'reviews.default.svc.cluster.local:9080');
    assert.equal(compileCel("'x' + string(response.grpc_status)").text(env(vars)), 'x14');
  });
  it('roots lists the top-level names read', () => {
    assert.deepEqual([...compileCel('response.code >= 400 && has(request.headers.x)').roots].sort(), ['request', 'response']);
  });
});
