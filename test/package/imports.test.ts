/**
 * No import cycles in src/, type-only ones included: a module that needs a type from a module
 * that imports it gets the type moved down instead (the kernel review found three such cycles).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Relative specifiers of every static `import … from`, `import '…'` and `export … from` (type-only included). */
const SPECIFIER = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;

/**
 * The import graph of `src/`: module → the modules it imports (paths relative to src). With
 * `runtime`, only the imports that load a module at run time: `import type` / `export type`
 * statements are erased (a module that names a type of the data plane builds none of it).
 */
function importGraph(runtime = false): Map<string, string[]> {
  const files = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(join(SRC, f), 'utf8');
    const matches = [...text.matchAll(SPECIFIER)].filter((m) => !runtime || !/^[\s;]*(?:import|export)\s+type\s/.test(m[0]));
    const deps = matches.map((m) => relative(SRC, resolve(SRC, dirname(f), m[1] as string)));
    graph.set(f, deps);
  }
  return graph;
}

/** Every cycle's modules (strongly connected components of more than one module, or a self-import), Tarjan's algorithm. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('imports', () => {
  it('the cycle finder finds cycles, type-only ones included, and nothing else (table)', () => {
    const rows: [string, Record<string, string[]>, string[][]][] = [
      ['none', { a: ['b'], b: ['c'], c: [] }, []],
      ['two modules', { a: ['b'], b: ['a'] }, [['a', 'b']]],
      ['three, through a third', { a: ['b'], b: ['c'], c: ['a'], d: ['a'] }, [['a', 'b', 'c']]],
      ['a self-import', { a: ['a'] }, [['a']]],
      ['two separate', { a: ['b'], b: ['a'], c: ['d'], d: ['c'] }, [['a', 'b'], ['c', 'd']]],
      ['an import of something outside', { a: ['node:fs', 'x'] }, []],
    ];
    for (const [name, g, want] of rows) assert.deepEqual(cycles(new Map(Object.entries(g))).sort(), want, name);
    // The specifier pattern sees type-only imports and re-exports.
    const specs = (text: string) => [...text.matchAll(SPECIFIER)].map((m) => m[1]);
    assert.deepEqual(specs("import type { A } from './a.ts';\nexport type { B } from '../b.ts';\nimport {\n  c,\n} from './c.ts';\nimport './d.ts';"), [
      './a.ts',
      '../b.ts',
      './c.ts',
      './d.ts',
    ]);
  });

  it('src/ has no import cycle', () => {
    const graph = importGraph();
    assert.ok(graph.size > 100, `read ${graph.size} modules`);
    assert.deepEqual(cycles(graph), [], 'move the shared types to the lower module');
  });

  it('`meshlet routes` prints clusters from the snapshot alone: the modules it loads hold no data-plane state (no src/outbound, no mesh)', () => {
    const graph = importGraph(true);
    // Type-only imports are left out, and only they: a type-only edge is not followed, a runtime one is.
    const edges = (g: Map<string, string[]>, m: string) => g.get(m) ?? [];
    assert.ok(edges(importGraph(), 'mesh-config-option.ts').includes('mesh-options.ts') && !edges(graph, 'mesh-config-option.ts').includes('mesh-options.ts'));
    assert.ok(edges(graph, 'mesh-config-option.ts').includes('core/path-normalization.ts'));
    const dataPlane = (m: string) => m.startsWith('outbound/') || m === 'mesh.ts' || m === 'create-mesh.ts' || m.startsWith('adapters/');
    const routes = reachable(graph, 'cli/commands/routes.ts');
    assert.ok(routes.has('routing/cluster-settings.ts') && routes.has('routing/compile.ts'), 'the walk follows imports');
    assert.deepEqual([...routes].filter(dataPlane), []);
    // The check can fail: `meshlet explain` builds a mesh, so its graph reaches the cluster state.
    assert.ok(reachable(graph, 'cli/commands/explain.ts').has('outbound/cluster-state.ts'));
  });
});

/** The modules `from` imports, directly or not (itself included). */
function reachable(graph: ReadonlyMap<string, readonly string[]>, from: string): Set<string> {
  assert.ok(graph.has(from), `${from} is in the graph`);
  const seen = new Set<string>([from]);
  const todo = [from];
  for (let m = todo.pop(); m !== undefined; m = todo.pop()) {
    for (const d of graph.get(m) ?? []) {
      if (seen.has(d) || !graph.has(d)) continue;
      seen.add(d);
      todo.push(d);
    }
  }
  return seen;
}
