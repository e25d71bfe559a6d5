/**
 * A request listener that throws synchronously, behind `mesh.createServer`, crashes the process
 * as it would on a plain node:http server (`'uncaughtException'`), on the first request of a
 * connection too. That request is parsed on a connection whose first bytes the server read and
 * put back (to tell TLS from plaintext), where Node dropped an error thrown from inside the
 * request's async scope: the error vanished and the request hung. Run in a child process, whose
 * `'uncaughtException'` handler reports the error and exits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const INDEX = new URL('../../src/index.ts', import.meta.url).href;

const script = (requests: number) => `
import { connect } from 'node:net';
import { createMesh } from ${JSON.stringify(INDEX)};
const mesh = await createMesh({ service: 'x', config: [], logger: { warn: () => {} } });
let n = 0;
process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message + ' on request ' + n); process.exit(7); });
const server = mesh.createServer((_req, res) => {
  n++;
  if (n === ${requests}) throw new Error('listener threw');
  res.end('ok');
});
server.listen(0, '127.0.0.1', () => {
  const s = connect(server.address().port, '127.0.0.1', () => {
    for (let i = 0; i < ${requests}; i++) s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
  });
  s.on('error', () => {});
  // A bound on a hang, not a timing assertion: a lost error never ends the request.
  setTimeout(() => { console.log('no error seen'); process.exit(3); }, 5000).unref();
  setInterval(() => {}, 1000);
});
`;

describe("a request listener's synchronous throw behind mesh.createServer", () => {
  for (const requests of [1, 2]) {
    it(`reaches 'uncaughtException' (request ${requests} of its connection)`, () => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(requests)], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.stdout.trim(), `uncaught: listener threw on request ${requests}`, r.stderr);
      assert.equal(r.status, 7);
    });
  }
});
