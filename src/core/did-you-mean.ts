/**
 * Did-you-mean suggestions for a misspelt name: config fields (YAML) and option names (code)
 * alike.
 *
 * @module
 */

/** Levenshtein distance between two strings (for did-you-mean suggestions). */
export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] as number;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] as number;
      dp[j] = Math.min((dp[j] as number) + 1, (dp[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] as number;
}

/** The known name closest to `name` (case-insensitive, at most 2 edits away), if any. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/** Suggests the closest known name for a misspelt one: ` (did you mean "x"?)`, or '' when none is close. */
export function suggest(name: string, known: readonly string[]): string {
  const best = closest(name, known);
  return best === undefined ? '' : ` (did you mean "${best}"?)`;
}
