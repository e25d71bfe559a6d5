/**
 * Builds the published JavaScript of `dist/` from `src/` with esbuild (run by `npm run build`,
 * after `tsc` has written the declarations).
 *
 *   node scripts/bundle.ts <out dir>
 *
 * One file per module (what `tsc` emits) made an app's `import 'meshlet'` load ~370 of meshlet's
 * modules — each resolved, read, compiled and linked by Node's ES module loader. Bundled into a
 * few files (the packages meshlet depends on stay imports), the same import takes about 40 % less
 * time and leaves ~5 MB less on the heap (bench/startup/import.ts measures both). The output:
 *
 * - `index.js`, `internals.js`: the package's entry points, each two lines: the Node.js version
 *   check (`core/require-node.js`, a file of its own so it runs before any dependency loads and
 *   fails with "meshlet needs Node.js >= …" rather than inside undici), then `export *` of the
 *   bundled entry in `bundle/`;
 * - `bundle/`: the entries and the chunks they share (`splitting`: one copy of each module,
 *   so a class or a registry is the same object through `meshlet` and `meshlet/internals`);
 * - `telemetry/sdk/index.js` (`meshlet/telemetry`) and `cli/bin.js` (the `meshlet` command,
 *   which loads the rest of the CLI only after its own Node.js version check);
 * - source maps next to each file, pointing at the shipped `src/` (no sources inlined).
 *
 * @module
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildOptions, build } from 'esbuild';

const out = process.argv[2];
if (out === undefined) {
  console.error('usage: node scripts/bundle.ts <out dir>');
  process.exit(2);
}

const common: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22.19',
  // undici, yaml, jose, @grpc/grpc-js, … stay `import`s: the app's copy is shared (one undici
  // for the app and the mesh) and optional peers stay optional.
  packages: 'external',
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  logLevel: 'warning',
  // src/index.ts's `import './core/require-node.ts'` is left out on purpose (package.json's
  // sideEffects names only the built file): the entry files above import that file first.
  logOverride: { 'ignored-bare-import': 'silent' },
  outdir: out,
};

await build({
  ...common,
  entryPoints: {
    'bundle/index': 'src/index.ts',
    'bundle/internals': 'src/internals.ts',
    'telemetry/sdk/index': 'src/telemetry/sdk/index.ts',
    'cli/bin': 'src/cli/bin.ts',
  },
  splitting: true,
  chunkNames: 'bundle/chunk-[hash]',
});
// Alone, with nothing shared: its file imports nothing that could load before the check.
await build({ ...common, entryPoints: { 'core/require-node': 'src/core/require-node.ts' } });

// V8 keeps a script's source text for as long as its functions live, as a two-byte string when
// the text holds one character beyond ASCII. esbuild writes strings ASCII-only but leaves comments
// (those it keeps, before class fields) and regular expression literals as written — meshlet's
// doc comments are full of "—" and "µs" — so most chunks would cost twice their size on the heap.
// A `\uXXXX` escape means the same character in a regular expression and nothing in a comment.
for (const f of readdirSync(out, { recursive: true, encoding: 'utf8' })) {
  if (!f.endsWith('.js')) continue;
  const path = join(out, f);
  const text = readFileSync(path, 'utf8');
  // `\—` in a regular expression is `—`; turned into `\\u2014` it would be another pattern.
  const escaped = /\\[\u0080-\uffff]/.exec(text);
  if (escaped !== null) throw new Error(`${path}: "${escaped[0]}" (a backslash before a character beyond ASCII) would change meaning once escaped; write the character as \\uXXXX in src/`);
  const ascii = text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(path, ascii);
}

for (const entry of ['index', 'internals']) {
  writeFileSync(join(out, `${entry}.js`), `import './core/require-node.js';\nexport * from './bundle/${entry}.js';\n`);
}
