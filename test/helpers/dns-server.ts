/**
 * A DNS server on 127.0.0.1 (UDP, port 0) answering A and AAAA queries from a table the test
 * sets, with the TTLs it sets: for testing what a resolver does with records' TTLs.
 */
import { createSocket } from 'node:dgram';
import { isIPv4 } from 'node:net';

export interface DnsRecord {
  readonly address: string;
  readonly ttl: number;
}

export interface FakeDnsServer {
  readonly port: number;
  /** Records by lower-case name; a name not in it is answered NXDOMAIN. */
  readonly records: Map<string, DnsRecord[]>;
  /** The questions received: `name type` (`A`, `AAAA`). */
  readonly queries: string[];
  close(): Promise<void>;
}

function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = at;
  while (msg[i] !== 0) {
    const len = msg[i] as number;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), end: i + 1 };
}

function rdata(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  // Full IPv6 form only (the tests' addresses): eight groups.
  const b = Buffer.alloc(16);
  const groups = address.split(':');
  for (let k = 0; k < groups.length; k++) b.writeUInt16BE(Number.parseInt(groups[k] as string, 16), k * 2);
  return b;
}

export async function startDnsServer(): Promise<FakeDnsServer> {
  const socket = createSocket('udp4');
  const records = new Map<string, DnsRecord[]>();
  const queries: string[] = [];
  socket.on('message', (msg, rinfo) => {
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    queries.push(`${name} ${qtype === 28 ? 'AAAA' : qtype === 1 ? 'A' : qtype}`);
    const all = records.get(name);
    const answers = (all ?? []).filter((r) => (qtype === 1 ? isIPv4(r.address) : qtype === 28 && !isIPv4(r.address)));
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2);
    header.writeUInt16BE(all === undefined ? 0x8183 : 0x8180, 2); // response, RD, RA; NXDOMAIN when unknown
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const parts: Buffer[] = [header, msg.subarray(12, end + 4)];
    for (const r of answers) {
      const data = rdata(r.address);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(r.ttl, 6);
      rr.writeUInt16BE(data.length, 10);
      parts.push(rr, data);
    }
    socket.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    records,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
