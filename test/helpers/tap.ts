/**
 * A `GET /tap` client for tests: the NDJSON records as they come, waiting for a number of one
 * type, and a way to go away. Opened once the stream's `start` record came (the mesh subscribed).
 */
import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { until } from './until.ts';

export type TapRecord = Record<string, unknown>;

/** A /tap client: its records as they come, and a way to go away. */
export interface Tap {
  readonly records: TapRecord[];
  readonly res: IncomingMessage;
  /** Waits until `n` records of `type` came. */
  wait(type: string, n: number): Promise<TapRecord[]>;
  /** Resolves when the server ended the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

export async function openTap(mesh: { readonly adminUrl: string | undefined }, query = ''): Promise<Tap> {
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${mesh.adminUrl}/tap${query}`, resolve).on('error', reject));
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^application\/x-ndjson/);
  const records: TapRecord[] = [];
  let pending = '';
  res.setEncoding('utf8');
  res.on('data', (d: string) => {
    pending += d;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      records.push(JSON.parse(pending.slice(0, nl)) as TapRecord);
      pending = pending.slice(nl + 1);
    }
  });
  const ended = new Promise<void>((resolve) => res.once('end', resolve));
  const of = (type: string) => records.filter((r) => r.type === type);
  const tap: Tap = {
    records,
    res,
    ended,
    wait: async (type, n) => {
      await until(() => of(type).length >= n, `${n} ${type} record(s) on /tap${query}: ${JSON.stringify(records)}`);
      return of(type);
    },
    close: () => res.destroy(),
  };
  // Subscribed once the first record came.
  await tap.wait('start', 1);
  return tap;
}
