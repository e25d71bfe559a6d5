/**
 * A tiny authoritative DNS server over UDP on 127.0.0.1 (port 0) for tests: A and AAAA answers
 * the test sets and changes, with their TTLs (one per record if wanted: what a resolver does with records' TTLs); SERVFAIL on demand; an empty NOERROR answer for a
 * name or type it has nothing for — or, under a zone the test declared (`zone`), NXDOMAIN for a
 * name it does not know and NODATA for a type it has none of, each with the zone's SOA in the
 * authority section (RFC 2308), and the SOA itself when asked for the zone's. Enough for Node's
 * `dns.Resolver` (`setServers`).
 */
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { Resolver } from 'node:dns/promises';
import type { DnsAnswer, DnsResolve } from '../../src/index.ts';

export interface TestDnsServer {
  /** `127.0.0.1:<port>` */
  readonly server: string;
  /** Sets a name's addresses (IPv4 and IPv6) and TTL in seconds. */
  set(name: string, addresses: readonly string[], ttlSeconds: number): void;
  /** Sets a name's records, each with its own TTL in seconds. */
  setRecords(name: string, records: readonly { readonly address: string; readonly ttl: number }[]): void;
  /** Forgets a name: asked for it, the server answers with no records. */
  delete(name: string): void;
  /** Answers SERVFAIL to everything while on. */
  fail(on: boolean): void;
  /** Makes the server authoritative for `apex`, whose SOA says `minimumSeconds` (the negative-caching TTL). */
  zone(apex: string, minimumSeconds: number): void;
  /** The questions asked: `name/A`, `name/AAAA`. */
  readonly asked: string[];
  close(): Promise<void>;
}

function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = at;
  while (msg[i] !== 0) {
    const len = msg[i] as number;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end: i + 1 };
}

function ipv6Bytes(a: string): Buffer {
  const [head = '', tail = ''] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = a.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return b;
}

/** A name as DNS labels. */
function nameBytes(name: string): Buffer {
  return Buffer.concat([...name.split('.').filter((l) => l !== '').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])), Buffer.from([0])]);
}

/** The SOA record of `apex` (its TTL the minimum, as servers send it in negative answers). */
function soaRecord(apex: string, minimum: number): Buffer {
  const nums = Buffer.alloc(20);
  for (const [i, n] of [1, 3600, 600, 86400, minimum].entries()) nums.writeUInt32BE(n, i * 4);
  const data = Buffer.concat([nameBytes(`ns.${apex}`), nameBytes(`hostmaster.${apex}`), nums]);
  const rr = Buffer.alloc(10);
  rr.writeUInt16BE(6, 0); // SOA
  rr.writeUInt16BE(1, 2);
  rr.writeUInt32BE(minimum, 4);
  rr.writeUInt16BE(data.length, 8);
  return Buffer.concat([nameBytes(apex), rr, data]);
}

export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, readonly { readonly address: string; readonly ttl: number }[]>();
  const zones = new Map<string, number>();
  let failing = false;
  const asked: string[] = [];
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 12) return;
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    asked.push(`${name}/${qtype === 1 ? 'A' : qtype === 28 ? 'AAAA' : qtype}`);
    const rec = records.get(name);
    const family = qtype === 1 ? 4 : qtype === 28 ? 6 : 0;
    const answers = failing || rec === undefined ? [] : rec.filter((r) => isIP(r.address) === family);
    // The zone the name is in, if the test declared one: NXDOMAIN and NODATA then carry its SOA.
    const apex = [...zones.keys()].find((z) => name === z || name.endsWith(`.${z}`));
    const soaAnswer = !failing && apex === name && qtype === 6 ? soaRecord(name, zones.get(name) as number) : undefined;
    const nxdomain = !failing && apex !== undefined && apex !== name && rec === undefined;
    const authority = !failing && apex !== undefined && answers.length === 0 && soaAnswer === undefined ? [soaRecord(apex, zones.get(apex) as number)] : [];
    const rcode = failing ? 2 : nxdomain ? 3 : 0;
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // id
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2); // QR, AA, RD echoed, RA, rcode
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length + (soaAnswer === undefined ? 0 : 1), 6);
    header.writeUInt16BE(authority.length, 8);
    const rrs = answers.map(({ address: a, ttl }) => {
      const data = family === 4 ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the question's name
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(ttl, 6);
      rr.writeUInt16BE(data.length, 10);
      return Buffer.concat([rr, data]);
    });
    sock.send(Buffer.concat([header, question, ...rrs, ...(soaAnswer === undefined ? [] : [soaAnswer]), ...authority]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  return {
    server: `127.0.0.1:${sock.address().port}`,
    set: (name, addresses, ttl) => void records.set(name.toLowerCase(), addresses.map((address) => ({ address, ttl }))),
    setRecords: (name, list) => void records.set(name.toLowerCase(), list),
    delete: (name) => void records.delete(name.toLowerCase()),
    fail: (on) => {
      failing = on;
    },
    zone: (apex, minimum) => void zones.set(apex.toLowerCase(), minimum),
    asked,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
}

/**
 * A `dns.resolve` for createMesh asking `server` only: A and AAAA with their TTLs (the smallest
 * applies); it fails only when neither query got an answer (as istiod's resolver).
 */
export function resolverFor(server: string): DnsResolve {
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([server]);
  return async (name): Promise<DnsAnswer> => {
    const [a, aaaa] = await Promise.allSettled([r.resolve4(name, { ttl: true }), r.resolve6(name, { ttl: true })]);
    const recs = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    const failed = [a, aaaa].filter((x) => x.status === 'rejected' && !['ENODATA', 'ENOTFOUND'].includes((x.reason as NodeJS.ErrnoException).code ?? ''));
    if (failed.length === 2) throw (failed[0] as PromiseRejectedResult).reason;
    return { addresses: recs.map((x) => x.address), ttlMs: recs.length === 0 ? undefined : Math.min(...recs.map((x) => x.ttl)) * 1000 };
  };
}
