/**
 * Header values of VirtualService header operations, checked as Istio's
 * `ValidateHTTPHeaderValue` does: no control characters, and Envoy's `%…%` formatter syntax
 * (a literal `%` is written `%%`; `%VARIABLE%` and `%VARIABLE(args)%` are formatters).
 * A port of Envoy's header parser state machine, as Istio ports it (header_value_validator.go).
 *
 * @module
 */

// Istio's httpHeaderValueRegexp: no C0 control characters but tab, no DEL.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is checked
const CONTROL = /[\u0000-\u0008\u000A-\u001F\u007F]/;

type State = 'literal' | 'name' | 'expectArray' | 'expectString' | 'string' | 'expectDelimiterOrEnd' | 'expectArgsEnd' | 'expectVariableEnd';

/** Checks a header value; returns a problem or nothing. */
export function checkHeaderValue(value: string): string | undefined {
  if (CONTROL.test(value)) return `header value ${JSON.stringify(value)} has control characters`;
  let state: State = 'literal';
  for (let pos = 0; pos < value.length; pos++) {
    const ch = value[pos];
    const hasNext = pos + 1 < value.length;
    switch (state) {
      case 'literal':
        if (ch !== '%') break;
        if (!hasNext) return `header value ${JSON.stringify(value)} ends with an unescaped "%" (write "%%" for a literal %)`;
        if (value[pos + 1] === '%') {
          pos++; // an escaped %
          break;
        }
        state = 'name';
        break;
      case 'name':
        if (ch === '%') state = 'literal';
        else if (ch === '(') state = 'expectArray';
        break;
      case 'expectArray':
        if (ch === '[') state = 'expectString';
        else if (ch !== ' ') state = 'string';
        break;
      case 'expectDelimiterOrEnd':
        if (ch === ',') state = 'expectString';
        else if (ch === ']') state = 'expectArgsEnd';
        else if (ch !== ' ') return `header value ${JSON.stringify(value)}: expected ",", "]" or a space in the formatter arguments`;
        break;
      case 'expectString':
        if (ch === '"') state = 'string';
        else if (ch !== ' ') return `header value ${JSON.stringify(value)}: expected '"' in the formatter arguments`;
        break;
      case 'string':
        if (ch === '\\') {
          if (!hasNext) return `header value ${JSON.stringify(value)}: unterminated backslash in a formatter argument`;
          pos++;
        } else if (ch === ')') state = 'expectVariableEnd';
        else if (ch === '"') state = 'expectDelimiterOrEnd';
        break;
      case 'expectArgsEnd':
        if (ch === ')') state = 'expectVariableEnd';
        else if (ch !== ' ') return `header value ${JSON.stringify(value)}: expected ")" after the formatter arguments`;
        break;
      case 'expectVariableEnd':
        if (ch === '%') state = 'literal';
        else if (ch !== ' ') return `header value ${JSON.stringify(value)}: expected "%" to end the formatter`;
        break;
    }
  }
  if (state !== 'literal') {
    return `header value ${JSON.stringify(value)} has an unterminated "%" formatter (write "%%" for a literal %)`;
  }
  return undefined;
}

/** True when a (valid) header value uses an Envoy `%VARIABLE%` formatter, not just `%%` escapes. */
export function hasFormatter(value: string): boolean {
  return /%[^%]/.test(value.replace(/%%/g, ''));
}

/** The value Envoy sends for a header value without formatters: `%%` is a literal `%`. */
export function unescapeHeaderValue(value: string): string {
  return value.includes('%%') ? value.replace(/%%/g, '%') : value;
}
