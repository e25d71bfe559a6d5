import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseJsonSteps } from './json-steps.ts';
import { runNow } from './steps.ts';

/** Pads a text past the size where it is split (spaces are JSON whitespace). */
const big = (json: string): string => json.replace(/\[/, `[${' '.repeat(300 * 1024)}`);

test('parseJsonSteps gives what JSON.parse gives, for large and small texts of every shape', () => {
  const resources = Array.from({ length: 3000 }, (_, i) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: `vs-${i}`, labels: { 'a"b': 'c\\\\"d', emoji: '😀', nl: 'x\ny' } },
    spec: { hosts: [`h${i}`], http: [{ route: [{ destination: { host: `h${i}` }, weight: 100 }], nested: [[1, [2, {}]], []] }] },
  }));
  const cases: [string, string][] = [
    ['a config event', JSON.stringify({ version: 'v1', resources })],
    ['members after the array, scalars of each kind', JSON.stringify({ resources, n: 12.5e3, t: true, f: false, z: null, s: 'x}]', o: { a: [1] } })],
    ['a string value last', JSON.stringify({ resources, version: 'v"}' })],
    ['whitespace and newlines between tokens', big(`{ "a" : [ 1 , "two" , { "three" : [ 3 ] } , [ ] , null ] ,\n\t"b" : { } }`)],
    ['scalars in the big array', big('{"a":[1,2.5,-3e2,true,false,null,"s",""]}')],
    ['an empty big array', big('{"a":[]}')],
    ['__proto__ as a key (an own property, as JSON.parse makes it)', big('{"__proto__":[1],"x":{"__proto__":2}}')],
    ['a repeated key: the last wins', big('{"a":[1],"a":[2]}')],
    ['escaped quotes and backslashes', big('{"a":["\\\\","\\"","\\\\\\"]",{"k\\"":"]"}]}')],
    ['not an object at the top', big('[1,2,3]')],
  ];
  const parse = JSON.parse;
  for (const [name, text] of cases) {
    // Whether the text was parsed whole (the fallback) or split: only 'not an object at the top' falls back.
    let whole = 0;
    JSON.parse = (t: string, reviver?: (this: unknown, key: string, value: unknown) => unknown) => {
      if (t === text) whole++;
      return parse(t, reviver);
    };
    let value: unknown;
    try {
      value = runNow(parseJsonSteps(text));
    } finally {
      JSON.parse = parse;
    }
    assert.deepEqual(value, JSON.parse(text), name);
    assert.equal(whole, name === 'not an object at the top' ? 1 : 0, `${name}: parsed whole ${whole} time(s)`);
  }
  const proto = runNow(parseJsonSteps(big('{"__proto__":[1]}'))) as object;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, '__proto__ does not set the prototype');
  assert.ok(Object.hasOwn(proto, '__proto__'));
});

test('parseJsonSteps pauses while it works through a large text, and throws what JSON.parse throws for invalid JSON', () => {
  const text = JSON.stringify({ version: 'v1', resources: Array.from({ length: 20_000 }, (_, i) => ({ kind: 'ServiceEntry', metadata: { name: `s${i}` } })) });
  const steps = parseJsonSteps(text);
  let pauses = 0;
  let r = steps.next();
  while (r.done !== true) {
    pauses++;
    r = steps.next();
  }
  assert.ok(pauses >= text.length / (128 * 1024), `${pauses} pauses for ${text.length} characters`);
  assert.deepEqual(r.value, JSON.parse(text));
  for (const bad of [big('{"a":[1,2,}'), big('{"a":[1,2]'), big('{"a":[1,2]} x'), big('{"a":[{"b":1]}]}'), big('{"a":[1,"x]}')]) {
    let expected: unknown;
    try {
      JSON.parse(bad);
    } catch (e) {
      expected = e;
    }
    assert.throws(() => runNow(parseJsonSteps(bad)), (e: unknown) => e instanceof SyntaxError && e.message === (expected as Error).message, bad.slice(-20));
  }
});
