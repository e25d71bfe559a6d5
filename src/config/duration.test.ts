import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durationMs } from './duration.ts';

test('durationMs: a config duration in ms; absent or not a duration gives undefined', () => {
  const rows: [string | undefined, number | undefined][] = [
    ['250ms', 250],
    ['1.5s', 1500],
    ['1h30m', 5_400_000],
    ['0', 0],
    ['0s', 0],
    [undefined, undefined],
    ['', undefined],
    ['10', undefined],
    ['-1s', undefined],
    ['fast', undefined],
  ];
  for (const [text, want] of rows) assert.equal(durationMs(text), want, String(text));
});
