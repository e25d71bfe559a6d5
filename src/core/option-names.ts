/**
 * Options objects passed in code refuse names they do not know (a misspelt `lables` would
 * otherwise be ignored: policies quietly not applying, mTLS quietly off). Each options type's
 * names are listed once, beside the type, through {@link optionNames}, which makes a name
 * missing from the list (a new option someone forgot to add) a type error.
 *
 * @module
 */
import { suggest } from './did-you-mean.ts';
import { InvalidArgumentError } from './errors.ts';

type Missing<T, K extends readonly PropertyKey[]> = Exclude<keyof T, K[number]>;

/**
 * `optionNames<Options>()([...names])`: the names, checked by the compiler to be exactly the
 * keys of `Options` (an unknown one, or a key left out, fails to compile).
 */
export function optionNames<T extends object>(): <const K extends readonly (keyof T & string)[]>(
  names: K & ([Missing<T, K>] extends [never] ? unknown : { readonly 'a key of the options type is not listed': Missing<T, K> }),
) => readonly string[] {
  return (names) => names;
}

/**
 * Throws an {@link InvalidArgumentError} `<who>: unknown option "<path><name>" (did you mean …?)`
 * for the first own key of `options` that is not in `known`. Anything that is not a plain
 * object is left to the caller's own checks.
 */
export function checkOptionNames(who: string, options: unknown, known: readonly string[], path = ''): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return;
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    throw new InvalidArgumentError(`${who}: unknown option "${path}${key}"${suggest(`${path}${key}`, known.map((k) => `${path}${k}`))}`);
  }
}
