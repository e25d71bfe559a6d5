import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { BOOKINFO, meshlet } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshlet-cli-validate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const BAD_VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: soon
    route:
    - destination: {host: reviews}
`;

/** Two mesh VirtualServices for one host (IST0109), the newer one first in the file. */
const SHADOW = ['new', 'old']
  .map(
    (age) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shadow-${age}, creationTimestamp: "${age === 'old' ? '2025-01-01' : '2025-06-01'}T00:00:00Z"}
spec:
  hosts: [shadow.example.com]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
`,
  )
  .join('---\n');

describe('meshlet validate: standard input, -o json|yaml, exit codes', () => {
  it('"-" reads standard input; issues name <stdin> with the line; exit 1', () => {
    const r = meshlet(['validate', '-'], { input: BAD_VS });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^error {3}<stdin>: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "soon".*\(line 7\)$/m);
    assert.match(r.stdout, /1 error\(s\), 0 warning\(s\), 0 info\(s\); 0 valid resource\(s\)/);
    const broken = meshlet(['validate', '-'], { input: 'kind: VirtualService\nmetadata:\n  name: [x\n' });
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /<stdin>: invalid YAML: .*\(line \d+\)/);
  });

  it("takes files as istioctl's and kubectl's scripts give them: -f/--filename (repeatable), and analyze -A", () => {
    const bad = join(dir, 'f-bad.yaml');
    writeFileSync(bad, BAD_VS);
    const r = meshlet(['validate', '-f', bad]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /f-bad\.yaml: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "soon"/);
    const both = meshlet(['analyze', '-A', '--filename', bad, '-f', '-'], { input: BAD_VS.replace('name: reviews}', 'name: reviews-2}') });
    assert.equal(both.code, 1, both.stderr);
    assert.match(both.stdout, /2 error\(s\), .*0 valid resource\(s\)/);
    assert.match(both.stdout, /<stdin>: VirtualService default\/reviews-2:/);
  });

  it("--failure-threshold warning|info fails on issues of that level or worse, as istioctl analyze's does (any case); ok in -o json agrees", () => {
    const warnOnly = 'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {}\n';
    assert.equal(meshlet(['validate', '-'], { input: warnOnly }).code, 0);
    const strict = meshlet(['validate', '--failure-threshold', 'Warning', '-o', 'json', '-'], { input: warnOnly });
    assert.equal(strict.code, 1, strict.stderr);
    assert.equal(JSON.parse(strict.stdout).ok, false);
    assert.equal(meshlet(['validate', '--failure-threshold=error', '-'], { input: warnOnly }).code, 0);
    assert.equal(meshlet(['validate', '--failure-threshold=info', '-'], { input: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n' }).code, 1);
    const bad = meshlet(['validate', '--failure-threshold', 'severe', '-'], { input: warnOnly });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--failure-threshold must be error, warning or info, got "severe"/);
  });

  it('"-" in UTF-16 (a byte order mark: Windows PowerShell 5 piping `kubectl get -o yaml`) is read as kubectl reads it', () => {
    const le = Buffer.from(BAD_VS.replace(/\n/g, '\r\n'), 'utf16le');
    for (const input of [Buffer.concat([Buffer.from([0xff, 0xfe]), le]), Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(le).swap16()])]) {
      const r = meshlet(['validate', '-'], { input });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stdout, /^error {3}<stdin>: VirtualService default\/reviews: spec\.http\[0\]\.timeout: invalid duration "soon".*\(line 7\)$/m);
      assert.match(r.stdout, /1 error\(s\), 0 warning\(s\), 0 info\(s\); 0 valid resource\(s\)/);
    }
  });

  it('text from the config (names, values) is printed inert: an escape sequence or a bidi control in a pull request cannot rewrite the CI log', () => {
    const RAW = ['\u001b', '\u0007', '\r', '\u202e'];
    const file = join(dir, 'escapes.yaml');
    writeFileSync(file, 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: "a\\e[2K\\rRED\\u202e"}\nspec: {host: "x\\e]0;title\\a"}\n');
    const r = meshlet(['validate', file]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(!RAW.some((c) => r.stdout.includes(c)), r.stdout);
    assert.match(r.stdout, /DestinationRule default\/a\\x1b\[2K\\rRED\\u202e: metadata\.name: /);
    assert.match(r.stdout, /invalid host "x\\x1b\]0;title\\x07"/);
    // -o json keeps the values (as JSON escapes); routes and explain refuse the config with the same inert lines.
    const doc = JSON.parse(meshlet(['validate', file, '-o', 'json']).stdout);
    assert.equal(doc.issues[0].resource, 'DestinationRule default/a\u001b[2K\rRED\u202e');
    const routes = meshlet(['routes', file, '--service', 'x']);
    assert.equal(routes.code, 1);
    assert.ok(!RAW.some((c) => routes.stderr.includes(c)), routes.stderr);
    assert.match(routes.stderr, /^error {3}.*a\\x1b\[2K\\rRED\\u202e/m);
  });

  it('"-" mixes with files in argument order; valid input exits 0', () => {
    const services = readFileSync(join(BOOKINFO, 'bookinfo.yaml'), 'utf8') + readFileSync(join(BOOKINFO, 'workloads.yaml'), 'utf8');
    const r = meshlet(['validate', join(BOOKINFO, 'destination-rule-all.yaml'), '-'], { input: services });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /0 error\(s\)/);
  });

  it('"-" twice, no argument, a bad -o, --json with -o yaml, an unknown option: usage errors, exit 2', () => {
    for (const args of [['validate', '-', '-'], ['validate'], ['validate', BOOKINFO, '-o', 'xml'], ['validate', BOOKINFO, '--json', '-o', 'yaml'], ['validate', BOOKINFO, '--nope']]) {
      const r = meshlet(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^meshlet[: ]/);
      assert.doesNotMatch(r.stderr, /^meshlet: meshlet /, 'one prefix');
      assert.equal(r.stdout, '');
    }
  });

  it('-o json: ok, resources, summary and every issue with all its fields; exit code still 1 on errors', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, BAD_VS);
    const r = meshlet(['validate', file, '-', '-o', 'json'], { input: 'apiVersion: networking.istio.io/v1\nkind: DestinationRul\nmetadata: {name: x}\n' });
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.ok, false);
    assert.equal(doc.resources, 0);
    assert.deepEqual(doc.summary, { errors: 2, warnings: 0, infos: 0 });
    assert.equal(doc.issues.length, 2);
    const [timeout, kind] = doc.issues;
    assert.deepEqual(Object.keys(timeout).sort(), ['code', 'file', 'level', 'line', 'message', 'path', 'resource', 'text']);
    assert.equal(timeout.level, 'error');
    assert.equal(timeout.code, 'MESHLET0001');
    assert.equal(timeout.file, file);
    assert.equal(timeout.line, 7);
    assert.equal(timeout.resource, 'VirtualService default/reviews');
    assert.equal(timeout.path, 'spec.http[0].timeout');
    assert.match(timeout.message, /^invalid duration "soon"/);
    assert.equal(timeout.text, `${file}: VirtualService default/reviews: spec.http[0].timeout: ${timeout.message} (line 7)`);
    assert.equal(kind.file, '<stdin>');
    assert.equal(kind.resource, null);
    assert.equal(kind.line, 1);
    assert.equal(kind.text, `<stdin>: ${kind.message} (line 1)`);
    assert.match(kind.message, /unknown kind "DestinationRul"/);
  });

  it('-o json of a clean config: ok true, exit 0; -o yaml parses to the same document; --json is a deprecated alias', () => {
    const json = meshlet(['validate', BOOKINFO, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    // Istio's bookinfo.yaml: its Deployments and ServiceAccounts are skipped with one info per kind.
    assert.deepEqual({ ...doc, issues: undefined }, { ok: true, resources: 16, summary: { errors: 0, warnings: 0, infos: 2 }, issues: undefined });
    assert.deepEqual(doc.issues.map((i: { level: string; code: string }) => `${i.level} ${i.code}`), ['info MESHLET0003', 'info MESHLET0003']);
    const yaml = meshlet(['validate', BOOKINFO, '-o', 'yaml']);
    assert.deepEqual(parse(yaml.stdout), doc);
    const legacy = meshlet(['validate', BOOKINFO, '--json']);
    assert.equal(legacy.code, 0);
    assert.deepEqual(JSON.parse(legacy.stdout), doc);
    assert.match(legacy.stderr, /--json is deprecated; use -o json/);
  });

  it('a VirtualService shadowing another for the same host: IST0109 (an error, as in istioctl analyze) on each, naming both and the one used; exit 1', () => {
    const r = meshlet(['validate', BOOKINFO, '-', '-o', 'json'], { input: SHADOW });
    assert.equal(r.code, 1, r.stdout);
    const doc = JSON.parse(r.stdout);
    const found = doc.issues.filter((i: { code: string }) => i.code === 'IST0109');
    const advice = '. Istio calls this undefined behaviour; merge them into one VirtualService';
    assert.deepEqual(
      found.map((i: { level: string; resource: string; file: string; line: number; message: string }) => [i.level, i.resource, i.file, i.line, i.message]),
      [
        ['error', 'VirtualService default/shadow-old', '<stdin>', 14, `host shadow.example.com is also claimed by VirtualService default/shadow-new (newer: it is ignored for that host)${advice}`],
        ['error', 'VirtualService default/shadow-new', '<stdin>', 5, `host shadow.example.com is also claimed by VirtualService default/shadow-old (older: this one is ignored for that host)${advice}`],
      ],
    );
    const human = meshlet(['validate', BOOKINFO, '-'], { input: SHADOW });
    assert.equal(human.code, 1);
    assert.match(human.stdout, /^error +IST0109 <stdin>: VirtualService default\/shadow-old: spec\.hosts\[0\]: host shadow\.example\.com is also claimed by VirtualService default\/shadow-new \(newer: it is ignored for that host\)\. Istio calls this undefined behaviour; merge them into one VirtualService \(line 14\)$/m);
    assert.match(human.stdout, /2 error\(s\), 0 warning\(s\)/);
  });
});
