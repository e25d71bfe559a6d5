/**
 * Makes the emitted declarations usable without meshlet's optional peer dependencies.
 *
 *   node scripts/optional-peer-types.ts <dir>      (run by `npm run build` on dist/)
 *
 * meshlet's gRPC API is typed with `@grpc/grpc-js`'s types and `meshlet/telemetry` with the
 * OpenTelemetry SDK's, all optional peers. An app that installs neither and compiles with
 * `skipLibCheck: false` (TypeScript's default) would get `TS2307 Cannot find module
 * '@grpc/grpc-js'` from meshlet's `.d.ts` files. Each declaration-file import of an optional
 * peer (named in package.json's `peerDependenciesMeta` as optional) gets a `// @ts-ignore` line
 * above it: with the peer installed its types are used as before; without it the imported names
 * are `any`, and only the APIs that need the peer lose their types. Running it twice changes
 * nothing.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MARK = '// @ts-ignore optional peer dependency: typed when it is installed, `any` without it';

const dir = process.argv[2];
if (dir === undefined) {
  console.error('usage: node scripts/optional-peer-types.ts <declarations directory>');
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { peerDependenciesMeta?: Record<string, { optional?: boolean }> };
const optional = Object.entries(pkg.peerDependenciesMeta ?? {})
  .filter(([, m]) => m.optional === true)
  .map(([name]) => name);
const escaped = optional.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|');
/** An import or re-export statement's line naming an optional peer (or a file inside one). */
const PEER_IMPORT = new RegExp(`^(?:import|export)\\b.*\\bfrom\\s+(['"])(?:${escaped})(?:/[^'"]*)?\\1;?\\s*$`);
/** Any mention of an optional peer as a module name (a multi-line import, an inline `import('peer')` type). */
const ANY = new RegExp(`(['"])(?:${escaped})(?:/[^'"]*)?\\1`);

function walk(d: string): string[] {
  return readdirSync(d).flatMap((f) => {
    const p = join(d, f);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.d.ts') ? [p] : [];
  });
}

let marked = 0;
for (const file of walk(dir)) {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: string[] = [];
  /** Lines of the output that were inserted (0-based), for the declaration map. */
  const inserted: number[] = [];
  for (const line of lines) {
    if (ANY.test(line) && !/^\s*(?:\*|\/\/|\/\*)/.test(line) && out.at(-1) !== MARK) {
      // tsc emits each import on one line; anything else would escape the mark: say so.
      if (!PEER_IMPORT.test(line)) throw new Error(`${file}: an optional peer named outside a one-line import: ${line.trim()}`);
      inserted.push(out.length);
      out.push(MARK);
      marked++;
    }
    out.push(line);
  }
  if (inserted.length === 0) continue;
  writeFileSync(file, out.join('\n'));
  // The declaration map maps generated lines (`;`-separated in `mappings`): an inserted line maps nowhere.
  const mapFile = `${file}.map`;
  if (existsSync(mapFile)) {
    const map = JSON.parse(readFileSync(mapFile, 'utf8')) as { mappings: string };
    const rows = map.mappings.split(';');
    for (const at of inserted) rows.splice(at, 0, '');
    map.mappings = rows.join(';');
    writeFileSync(mapFile, JSON.stringify(map));
  }
}
console.log(`optional-peer-types: ${marked} import(s) of ${optional.length} optional peers marked in ${dir}`);
