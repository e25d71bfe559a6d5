/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: every line is
 * checked, and anything the format does not allow fails with the line number. Beyond the
 * grammar it checks what a scraper relies on: `# HELP` and `# TYPE` at most once per family and
 * before its samples, a family's samples together, no sample of an undeclared family, no series
 * twice, histograms with increasing `le` ending in `+Inf`, cumulative counts, `_count` equal to
 * the `+Inf` bucket, and `_sum`; counters not negative.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly help: string | undefined;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: ${JSON.stringify(text)} is not a sample value`);
  return Number(text);
}

/** Reads `{a="x",b="y"}` at `text[i]` (which is `{`); returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = Object.create(null);
  let i = start + 1;
  if (text[i] === '}') return [labels, i + 1];
  for (;;) {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (m === null) throw new Error(`${where}: a label name was expected at column ${i + 1}`);
    const name = m[0];
    i += name.length;
    if (text[i] !== '=' || text[i + 1] !== '"') throw new Error(`${where}: ${name} must be followed by ="`);
    i += 2;
    let v = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`${where}: unterminated label value of ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[i + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new Error(`${where}: invalid escape \\${e ?? ''} in the value of ${name}`);
        i += 2;
        continue;
      }
      if (c === '\n') throw new Error(`${where}: raw line feed in the value of ${name}`);
      v += c;
      i++;
    }
    i++;
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (name.startsWith('__')) throw new Error(`${where}: label ${name} is reserved`);
    labels[name] = v;
    if (text[i] === ',') {
      i++;
      if (text[i] === '}') return [labels, i + 1];
      continue;
    }
    if (text[i] === '}') return [labels, i + 1];
    throw new Error(`${where}: , or } expected after the value of ${name}`);
  }
}

/** The family a sample name belongs to (histogram and summary suffixes). */
function familyOf(name: string, families: Map<string, { type: string }>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    const f = families.get(base);
    if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return base;
  }
  return name;
}

function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_m, e: string) => {
    if (e === '\\') return '\\';
    if (e === 'n') return '\n';
    throw new Error(`${where}: invalid escape \\${e} in HELP`);
  });
}

/** Parses an exposition; throws on the first thing the format does not allow. */
export function parseExposition(text: string): Map<string, Family> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map<string, Family & { samples: Sample[]; help: string | undefined }>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: string | undefined;
  const lines = text === '' ? [] : text.slice(0, -1).split('\n');
  lines.forEach((line, n) => {
    const where = `line ${n + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line === '') throw new Error(`${where}: empty line`);
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${NAME}) ?(.*)$`).exec(line);
      if (m === null) {
        if (/^# (HELP|TYPE)/.test(line)) throw new Error(`${where}: malformed ${line.slice(2, 6)}`);
        return; // a plain comment
      }
      const [, what, name, rest] = m as unknown as [string, 'HELP' | 'TYPE', string, string];
      if (closed.has(name) && current !== name) throw new Error(`${where}: ${what} for ${name} after its samples ended`);
      let f = families.get(name);
      if (f === undefined) {
        f = { name, help: undefined, type: 'untyped', samples: [] };
        families.set(name, f);
        (f as { typed?: boolean }).typed = false;
      }
      if (f.samples.length > 0) throw new Error(`${where}: ${what} for ${name} after its samples`);
      if (what === 'HELP') {
        if (f.help !== undefined) throw new Error(`${where}: HELP for ${name} twice`);
        f.help = unescapeHelp(rest, where);
      } else {
        if ((f as { typed?: boolean }).typed === true) throw new Error(`${where}: TYPE for ${name} twice`);
        if (!TYPES.has(rest)) throw new Error(`${where}: unknown TYPE ${JSON.stringify(rest)}`);
        (f as { type: string }).type = rest;
        (f as { typed?: boolean }).typed = true;
      }
      if (current !== undefined && current !== name) closed.add(current);
      current = name;
      return;
    }
    const m = new RegExp(`^(${NAME})`).exec(line);
    if (m === null) throw new Error(`${where}: a metric name was expected`);
    const name = m[1] as string;
    let i = name.length;
    let labels: Record<string, string> = Object.create(null);
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where);
    if (line[i] !== ' ') throw new Error(`${where}: one space was expected before the value`);
    const parts = line.slice(i + 1).split(' ');
    if (parts.length > 2 || parts.some((p) => p === '')) throw new Error(`${where}: value [timestamp] expected`);
    const value = parseValue(parts[0] as string, where);
    if (parts[1] !== undefined && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: the timestamp must be an integer`);
    const fam = familyOf(name, families);
    const f = families.get(fam);
    if (f === undefined || (f as { typed?: boolean }).typed !== true) throw new Error(`${where}: sample of ${fam}, which has no TYPE before it`);
    if (closed.has(fam) || (current !== undefined && current !== fam)) throw new Error(`${where}: the samples of ${fam} are not together`);
    current = fam;
    for (const k of Object.keys(labels)) if (!LABEL.test(k)) throw new Error(`${where}: bad label name ${k}`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)))}`;
    if (seen.has(key)) throw new Error(`${where}: the series ${name}${JSON.stringify(labels)} twice`);
    seen.add(key);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: a counter must not be negative or NaN`);
    if (f.type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) throw new Error(`${where}: a histogram bucket needs le`);
    if (f.type !== 'histogram' && 'le' in labels) throw new Error(`${where}: le on a ${f.type}`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, Sample[]>();
  for (const s of f.samples) {
    const { le: _le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  for (const [k, ss] of groups) {
    const buckets = ss.filter((s) => s.name === `${f.name}_bucket`);
    const les = buckets.map((b) => parseValue(b.labels.le as string, `${f.name}${k} le`));
    if (buckets.length === 0 || les.at(-1) !== Number.POSITIVE_INFINITY) throw new Error(`${f.name}${k}: the last bucket must be le="+Inf"`);
    for (let i = 1; i < buckets.length; i++) {
      if (!((les[i] as number) > (les[i - 1] as number))) throw new Error(`${f.name}${k}: le must increase`);
      if ((buckets[i] as Sample).value < (buckets[i - 1] as Sample).value) throw new Error(`${f.name}${k}: bucket counts must be cumulative`);
    }
    const count = ss.find((s) => s.name === `${f.name}_count`);
    const sum = ss.find((s) => s.name === `${f.name}_sum`);
    if (count === undefined || sum === undefined) throw new Error(`${f.name}${k}: _count and _sum are required`);
    if (count.value !== (buckets.at(-1) as Sample).value) throw new Error(`${f.name}${k}: _count ${count.value} differs from the +Inf bucket`);
  }
}

/** The value of the one sample `name` whose labels include `labels` (undefined when none). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    const ss = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (ss.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${ss.length} samples`);
    if (ss.length === 1) return (ss[0] as Sample).value;
  }
  return undefined;
}
