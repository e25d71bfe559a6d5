/**
 * Text the CLI prints that it did not write itself (what a control plane answers: NACK reasons a
 * workload sent, labels, peers, resource names, refusal messages) is made inert first: a
 * workload must not be able to move the cursor, recolour, retitle or clear the operator's
 * terminal, hide text, or fake lines. Control characters (C0 including newline and tab, DEL, C1)
 * and the Unicode bidirectional and invisible formatting characters become visible escapes.
 *
 * @module
 */

/** C0, DEL, C1, and Unicode format characters that reorder or hide text (bidi controls, zero-width, BOM, line/paragraph separators). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is what this is for.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Whether `text` has a character {@link printable} escapes. */
export function hasUnsafe(text: string): boolean {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text);
}

/** `text` with every control or invisible formatting character written as an escape (`\x1b`, `\n`, `\u202e`). */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const named = NAMED[c];
    if (named !== undefined) return named;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** What {@link UNSAFE} matches beyond C0: `JSON.stringify` escapes C0 in strings, but leaves these raw. */
const UNSAFE_ABOVE_C0 = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * Output of `JSON.stringify` with the characters {@link printable} escapes written as `\uXXXX`
 * (the same JSON value: they only occur inside strings, where C0 is escaped already).
 */
export function jsonPrintable(json: string): string {
  return json.replace(UNSAFE_ABOVE_C0, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
