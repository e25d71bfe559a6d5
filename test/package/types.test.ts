/**
 * meshlet's published types as an application's TypeScript sees them: the declarations `npm run
 * build` emits, in a package laid out as npm installs it, compiled against an app with `strict`
 * and `exactOptionalPropertyTypes` (on in the tsconfig TS 6's `tsc --init` writes). Checked: the
 * options apps pass (test/types/exact-optional/options.ts, undefined for every optional one) and
 * every TypeScript block of README.md and docs/*.md that is a complete program (it starts with an
 * `import`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { before, describe, it } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** Inside the repository's node_modules, so the declarations resolve meshlet's dependencies (and the app its peers) from there. */
const DIR = join(ROOT, 'node_modules', '.cache', 'meshlet-test', 'types');
const APP = join(DIR, 'app');
/** The declarations as tsc emits them, before scripts/optional-peer-types.ts marks them. */
const UNMARKED = join(DIR, 'unmarked-dist');

/** The TypeScript blocks of a Markdown file that are complete programs: they start with an import. */
export function programBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  for (const m of markdown.matchAll(/^```(?:ts|typescript)[^\n]*\n([\s\S]*?)^```/gm)) {
    const code = m[1] as string;
    if (/^import\s/.test(code.trimStart())) blocks.push({ line: markdown.slice(0, m.index).split('\n').length, code });
  }
  return blocks;
}

function tsc(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [TSC, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

before(() => {
  rmSync(DIR, { recursive: true, force: true });
  const pkg = join(DIR, 'node_modules', 'meshlet');
  mkdirSync(APP, { recursive: true });
  mkdirSync(pkg, { recursive: true });
  // The declarations of the package's build, where package.json's exports point.
  const build = tsc(['-p', join(ROOT, 'tsconfig.build.json'), '--emitDeclarationOnly', '--declarationMap', 'false', '--outDir', join(pkg, 'dist')], ROOT);
  assert.equal(build.code, 0, build.out);
  cpSync(join(pkg, 'dist'), UNMARKED, { recursive: true });
  // As `npm run build` does after tsc.
  const mark = spawnSync(process.execPath, [join(ROOT, 'scripts', 'optional-peer-types.ts'), join(pkg, 'dist')], { encoding: 'utf8' });
  assert.equal(mark.status, 0, mark.stdout + mark.stderr);
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  writeFileSync(join(APP, 'package.json'), JSON.stringify({ name: 'types-app', private: true, type: 'module' }));
});

describe('the published types in an app with strict and exactOptionalPropertyTypes', () => {
  it('accept undefined for every optional option, and every complete TypeScript program of README.md and docs/*.md type-checks', () => {
    const files = ['options.ts'];
    copyFileSync(join(ROOT, 'test', 'types', 'exact-optional', 'options.ts'), join(APP, 'options.ts'));
    const sources = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const where = new Map<string, string>();
    for (const doc of sources) {
      for (const { line, code } of programBlocks(readFileSync(join(ROOT, doc), 'utf8'))) {
        const name = `${doc.replace(/[/.]/g, '_')}_${line}.ts`;
        writeFileSync(join(APP, name), code);
        where.set(name, `${doc}:${line}`);
        files.push(name);
      }
    }
    assert.ok(where.size >= 10, `${where.size} doc programs found`);
    writeFileSync(
      join(APP, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2023',
          module: 'nodenext',
          strict: true,
          exactOptionalPropertyTypes: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(ROOT, 'node_modules', '@types')],
        },
        files,
      }),
    );
    const r = tsc(['-p', '.'], APP);
    // Each error pointed back at its Markdown file and line.
    const out = r.out.replace(/^(\w+\.ts)\((\d+),(\d+)\)/gm, (all, f: string, l: string) => (where.has(f) ? `${where.get(f)} + ${Number(l) - 1} (${all})` : all));
    assert.equal(r.code, 0, out);
  });
});

describe('the published types in an app without the optional peers, skipLibCheck false', () => {
  /**
   * An app outside the repository (so nothing resolves the repository's @grpc/grpc-js or
   * OpenTelemetry SDK), meshlet's dependencies linked in, TypeScript's default `skipLibCheck:
   * false`: every declaration file meshlet ships is checked.
   */
  function appWith(dist: string): { dir: string; compile(): { code: number | null; out: string } } {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-types-'));
    const pkg = join(dir, 'node_modules', 'meshlet');
    cpSync(dist, join(pkg, 'dist'), { recursive: true });
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    const deps = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
    for (const d of deps) {
      mkdirSync(dirname(join(dir, 'node_modules', d)), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', d), join(dir, 'node_modules', d), 'dir');
    }
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'no-peers-app', private: true, type: 'module' }));
    writeFileSync(
      join(dir, 'main.ts'),
      [
        "import { createMesh, MeshletError } from 'meshlet';",
        "import { startTelemetry } from 'meshlet/telemetry';",
        "const mesh = await createMesh({ service: 'reviews', namespace: 'default', config: './mesh' });",
        "const res = await mesh.fetch('http://ratings:9080/ratings/1');",
        'const status: number = res.status;',
        "const e: unknown = new Error('x');",
        "if (e instanceof MeshletError) console.log(e.code satisfies string);",
        'console.log(status, typeof startTelemetry, typeof mesh.grpc);',
        'await mesh.close();',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { target: 'es2023', module: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] },
        files: ['main.ts'],
      }),
    );
    return { dir, compile: () => tsc(['-p', '.'], dir) };
  }

  it('compile: the optional peers\' imports are marked, so their absence is no error (unmarked, the same app fails with TS2307)', () => {
    const marked = appWith(join(DIR, 'node_modules', 'meshlet', 'dist'));
    const unmarked = appWith(UNMARKED);
    try {
      const bad = unmarked.compile();
      // The control: this app really cannot see the peers.
      assert.notEqual(bad.code, 0);
      assert.match(bad.out, /TS2307: Cannot find module '@grpc\/grpc-js'/);
      assert.match(bad.out, /TS2307: Cannot find module '@opentelemetry\/sdk-metrics'/);
      const good = marked.compile();
      assert.equal(good.code, 0, good.out);
    } finally {
      rmSync(marked.dir, { recursive: true, force: true });
      rmSync(unmarked.dir, { recursive: true, force: true });
    }
  });
});
