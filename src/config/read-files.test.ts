import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { configMapVolume, mkfifo } from '../../test/helpers/config-dir.ts';
import { IssueList } from './issues.ts';
import { readSources } from './load.ts';
import { decodeConfigText, listConfigFiles, readConfigFile } from './read-files.ts';

const root = mkdtempSync(join(tmpdir(), 'meshlet-read-'));
after(() => rmSync(root, { recursive: true, force: true }));

const SE = (name: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}}
spec: {hosts: [${name}.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}
`;

test('readConfigFile: regular files (also through links) are read; anything else is refused by what it is, without blocking', async () => {
  const dir = join(root, 'kinds');
  mkdirSync(dir);
  writeFileSync(join(dir, 'plain.yaml'), 'a: 1\n');
  symlinkSync('plain.yaml', join(dir, 'link.yaml'));
  mkfifo(join(dir, 'pipe.yaml'));
  symlinkSync('/dev/zero', join(dir, 'zero.yaml'));
  symlinkSync('/dev/null', join(dir, 'null.yaml'));
  mkdirSync(join(dir, 'dir.yaml'));
  symlinkSync('missing.yaml', join(dir, 'dangling.yaml'));
  writeFileSync(join(dir, 'big.yaml'), 'x'.repeat(2048));
  // A regular file whose stat says 0 bytes but that has more (as /dev/zero does, but readable): the read itself is bounded.
  symlinkSync('/proc/self/status', join(dir, 'proc.yaml'));
  const cases: [string, RegExp | string][] = [
    ['plain.yaml', 'a: 1\n'],
    ['link.yaml', 'a: 1\n'],
    ['pipe.yaml', /^is a FIFO \(named pipe\), not a regular file; only regular files are read as config$/],
    ['zero.yaml', /^is a character device, not a regular file/],
    ['null.yaml', /^is a character device, not a regular file/],
    ['dir.yaml', /^is a directory, not a regular file/],
    ['dangling.yaml', /^no such file or directory$/],
    ['big.yaml', /^is 2048 bytes; the limit is 1024 bytes$/],
    ['proc.yaml', /^grew past the limit of 1024 bytes while it was read$/],
  ];
  for (const [name, expected] of cases) {
    const r = await readConfigFile(join(dir, name), name === 'big.yaml' || name === 'proc.yaml' ? 1024 : 1 << 20);
    if (typeof expected === 'string') assert.equal(r.text, expected, name);
    else assert.match(r.error ?? `(read: ${r.text})`, expected, name);
  }
});

test('listConfigFiles: links to directories are entered (a ConfigMap key with a path), loops are not, links to nothing are skipped with a warning', async () => {
  const dir = join(root, 'tree');
  mkdirSync(join(dir, 'real'), { recursive: true });
  writeFileSync(join(dir, 'real', 'a.yaml'), '');
  symlinkSync('real', join(dir, 'linked'));
  symlinkSync('..', join(dir, 'real', 'up')); // a loop back to the root
  symlinkSync('nowhere.yaml', join(dir, 'dangling.yaml'));
  writeFileSync(join(dir, '.hidden.yaml'), '');
  const issues = new IssueList();
  const files = await listConfigFiles([dir], issues);
  assert.deepEqual(files, [join(dir, 'linked', 'a.yaml'), join(dir, 'real', 'a.yaml')]);
  assert.deepEqual(
    issues.all.map((i) => [i.level, i.file, i.message]),
    [
      ['warning', join(dir, 'dangling.yaml'), 'is a symbolic link to nothing (a missing file); skipped'],
      ['warning', join(dir, 'linked', 'up'), 'is a symbolic link to a directory that contains it (a loop); not entered'],
      ['warning', join(dir, 'real', 'up'), 'is a symbolic link to a directory that contains it (a loop); not entered'],
    ],
  );
});

test('a ConfigMap volume reads each key once, through its link (the timestamped directory and ..data are not read twice)', async () => {
  const dir = join(root, 'configmap');
  const cm = configMapVolume(dir);
  cm.update({ 'a.yaml': SE('a'), 'b.yaml': SE('b') });
  cm.update({ 'a.yaml': SE('a2'), 'c.yaml': SE('c') });
  const issues = new IssueList();
  const docs = await readSources([dir], issues);
  assert.deepEqual(issues.all.map(String), []);
  assert.deepEqual(
    docs.map((d) => [d.source.file, (d.value as { metadata: { name: string } }).metadata.name]),
    [
      [join(dir, 'a.yaml'), 'a2'],
      [join(dir, 'c.yaml'), 'c'],
    ],
  );
});

test('UTF-16 files (a byte order mark, as Windows PowerShell 5 writes `kubectl get -o yaml > f.yaml`) are read as kubectl reads them', async () => {
  const dir = join(root, 'utf16');
  mkdirSync(dir);
  const text = `${SE('a')}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\nspec:\n  hosts: [b.example.com]\n  http:\n  - timeout: 3 seconds\n    route: [{destination: {host: b.example.com}}]\n`.replace(/\n/g, '\r\n');
  const le = Buffer.from(text, 'utf16le');
  const be = Buffer.from(le).swap16();
  writeFileSync(join(dir, 'le.yaml'), Buffer.concat([Buffer.from([0xff, 0xfe]), le]));
  writeFileSync(join(dir, 'be.yaml'), Buffer.concat([Buffer.from([0xfe, 0xff]), be]));
  writeFileSync(join(dir, 'le.json'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c' }, spec: { ports: [{ port: 80 }] } }), 'utf16le')]));
  for (const name of ['le.yaml', 'be.yaml']) {
    const read = await readConfigFile(join(dir, name), 1 << 20);
    assert.equal(read.text, text, name);
    const issues = new IssueList();
    const docs = await readSources([join(dir, name)], issues);
    assert.deepEqual(
      docs.map((d) => [(d.value as { kind: string }).kind, d.source.line]),
      [
        ['ServiceEntry', 1],
        ['VirtualService', 6],
      ],
      name,
    );
    assert.deepEqual(issues.all, [], name);
  }
  const json = await readSources([join(dir, 'le.json')], new IssueList());
  assert.deepEqual(
    json.map((d) => (d.value as { kind: string }).kind),
    ['Service'],
  );
  // Text without a mark stays UTF-8, as kubectl reads it.
  assert.equal(decodeConfigText(Buffer.from('a: é\n', 'utf8')), 'a: é\n');
});
