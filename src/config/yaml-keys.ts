/**
 * Duplicate map keys in parsed YAML, found in one pass.
 *
 * The `yaml` package's own check (`uniqueKeys: true`, its default) compares each new key with
 * every earlier key of the map (`items.some(...)`), so a map of n keys costs n²/2 comparisons: a
 * legal 614 KiB file with one 40,000-key map took 26 s to parse. Here each map's keys go into a
 * `Map` once, so the check is linear in the number of keys. Keys are equal as the `yaml` package
 * decides (its default `uniqueKeys`): two scalar keys with the same value (`===`; `1` and `"1"`
 * differ, `~` and an empty key are both null); other keys (maps, lists, aliases) are never equal.
 *
 * @module
 */
import { type Document, isCollection, isPair, isScalar, visit } from 'yaml';

/** A duplicate key: where it is (the offset of the later key) and the message the `yaml` package gives it. */
export interface DuplicateKey {
  readonly offset: number;
  readonly message: string;
}

/** The `yaml` package's message for a duplicate key (kept, so messages do not change). */
export const DUPLICATE_KEY_MESSAGE = 'Map keys must be unique';

/**
 * Every key of every map in `doc` that repeats an earlier key of the same map, in document order.
 * `onKey` is called once per key looked at (tests count the work with it).
 */
export function duplicateKeys(doc: Document, onKey?: () => void): DuplicateKey[] {
  const out: DuplicateKey[] = [];
  visit(doc, {
    Map(_key, map) {
      if (map.items.length < 2) return undefined;
      const seen = new Map<unknown, true>();
      for (const pair of map.items) {
        onKey?.();
        const key = isPair(pair) ? pair.key : undefined;
        if (!isScalar(key)) continue;
        const value = key.value;
        if (typeof value === 'number' && Number.isNaN(value)) continue; // NaN !== NaN, as the yaml package compares
        if (seen.has(value)) out.push({ offset: key.range?.[0] ?? map.range?.[0] ?? 0, message: DUPLICATE_KEY_MESSAGE });
        else seen.set(value, true);
      }
      return undefined;
    },
  });
  // A map's children are visited after it; the yaml package reported nested maps' keys first.
  return out.sort((a, b) => a.offset - b.offset);
}

/** The message for a map key that is itself a map or a list. */
export const COLLECTION_KEY_MESSAGE =
  'a map key is a map or a list, which Kubernetes cannot read (its YAML becomes JSON, whose keys are strings); is a template such as {{ .Name }} left unrendered?';

/**
 * Every map key in `doc` that is a map or a list (`{{ .Name }}: x`, `? [a]`), in document order.
 * Kubernetes refuses them (`kubectl` turns YAML into JSON first); the `yaml` package would turn
 * them into strings and print a process warning.
 */
export function collectionKeys(doc: Document): DuplicateKey[] {
  const out: DuplicateKey[] = [];
  visit(doc, {
    Pair(_key, pair, path) {
      const key = pair.key;
      if (!isCollection(key)) return undefined;
      const parent = path[path.length - 1] as { range?: [number, number, number] | null } | undefined;
      out.push({ offset: key.range?.[0] ?? parent?.range?.[0] ?? 0, message: COLLECTION_KEY_MESSAGE });
      return visit.SKIP; // `{{ x }}: y` is a map key whose own key is a map: one error is enough
    },
  });
  return out.sort((a, b) => a.offset - b.offset);
}
