/**
 * Which meshlet a bench measures. By default the built package, as an app imports it
 * (`dist/`, bundled by scripts/bundle.ts), rebuilt from this tree first when any of `src/` is
 * newer than it — not `src/index.ts`, which Node loads as ~370 separate TypeScript modules. The
 * two differ in more than start-up time: loading the modules one by one leaves V8's young
 * generation at its largest size (33.6 MB against 16.8 for the bundle, bench/outbound/gc-regime.ts),
 * the state in which V8 pretenures the allocation sites of whatever the process does next
 * (bench/RESULTS.md, "V8 pretenures undici's request sites") — a cost an app of the shipped
 * package does not pay.
 *
 * `--mesh-module src` measures the sources; `--mesh-module <file>` a given entry point (a
 * worktree's `src/index.ts` or `dist/index.js`), with its `meshlet/telemetry` entry beside it.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '../..');

/** The entry points a bench imports, as file URLs, and how to name them in a report. */
export interface MeshletBuild {
  /** `meshlet` (exports createMesh). */
  readonly index: string;
  /** `meshlet/telemetry` of the same build (startTelemetry). */
  readonly telemetry: string;
  /** For reports: `dist/index.js (bundled, as shipped)`, `src/index.ts`, or the path given. */
  readonly name: string;
}

/** The newest modification time (ms) of the files the build is made from. */
function newestSource(): number {
  let newest = 0;
  for (const f of readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })) {
    if (f.endsWith('.ts') && !f.endsWith('.test.ts')) newest = Math.max(newest, statSync(join(ROOT, 'src', f)).mtimeMs);
  }
  for (const f of ['package.json', 'tsconfig.build.json', 'scripts/bundle.ts']) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/** Builds `dist/` (`npm run build`) unless its entry point is newer than every source file. */
export function ensureBuilt(): void {
  const entry = join(ROOT, 'dist', 'index.js');
  if (existsSync(entry) && statSync(entry).mtimeMs >= newestSource()) return;
  process.stderr.write('bench: building dist/ from src/ (npm run build) so the bench measures the package as shipped\n');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (r.status !== 0) throw new Error(`npm run build failed (exit ${r.status}); measure the sources with --mesh-module src`);
}

/** The meshlet to measure: `undefined` → the built package; `src` → the sources; else a file. */
export function meshletBuild(choice?: string): MeshletBuild {
  if (choice === undefined || choice === 'dist') {
    ensureBuilt();
    return { index: pathToFileURL(join(ROOT, 'dist/index.js')).href, telemetry: pathToFileURL(join(ROOT, 'dist/telemetry/sdk/index.js')).href, name: 'dist/index.js (bundled, as shipped)' };
  }
  if (choice === 'src') return { index: pathToFileURL(join(ROOT, 'src/index.ts')).href, telemetry: pathToFileURL(join(ROOT, 'src/telemetry/sdk/index.ts')).href, name: 'src/index.ts' };
  const file = resolve(choice);
  const ext = file.endsWith('.ts') ? 'ts' : 'js';
  return { index: pathToFileURL(file).href, telemetry: pathToFileURL(join(dirname(file), 'telemetry', 'sdk', `index.${ext}`)).href, name: choice };
}
