/**
 * An incremental Server-Sent Events parser (the WHATWG "event stream interpretation"): feed it
 * the bytes of a `text/event-stream` body as they arrive, in chunks of any size, and it calls
 * back once per complete event and once per comment line.
 *
 * Handled: `event`, `data` (several `data` lines join with `\n`), `id` (remembered across
 * events, ignored when it contains NUL), `retry`, comments (`: ping`), LF, CRLF and CR line
 * ends (also split across chunks), a leading byte-order mark, UTF-8 split across chunks, and a
 * field without a colon. An event without data is not dispatched, as the spec says.
 *
 * @module
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event` field; `message` when absent. */
  readonly event: string;
  /** The `data` lines joined with `\n`. */
  readonly data: string;
  /** The last event id seen on the stream (sticky across events), '' when none. */
  readonly id: string;
  /** The `retry` field of this event, when it had a valid one. */
  readonly retry?: number;
}

/** What the parser calls. */
export interface SseHandlers {
  onEvent(event: SseEvent): void;
  /** A comment line (`: ping` → `ping`); servers use them as heartbeats. */
  onComment?(text: string): void;
}

/** Longest line, and longest event (its data lines together), kept before the stream is considered hostile (16 Mi characters). */
const DEFAULT_MAX_LINE = 16 * 1024 * 1024;

/** Incremental SSE parser; one per stream. */
export class SseParser {
  readonly #h: SseHandlers;
  readonly #decoder = new TextDecoder('utf-8');
  readonly #maxLine: number;
  #buf = '';
  #sawCr = false;
  #first = true;
  #event = '';
  #data: string[] = [];
  /** Characters of {@link #data} (with the line feeds that join them). */
  #dataChars = 0;
  #id = '';
  #retry: number | undefined;

  constructor(handlers: SseHandlers, options: { maxLineChars?: number } = {}) {
    this.#h = handlers;
    this.#maxLine = options.maxLineChars ?? DEFAULT_MAX_LINE;
  }

  /** The last event id seen (what a reconnect sends as `Last-Event-ID`). */
  get lastEventId(): string {
    return this.#id;
  }

  /** Feeds a chunk of the stream (bytes or already-decoded text). Throws `RangeError` on an over-long line or event. */
  push(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (this.#first && text.length > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // Lines are found with indexOf (native scans): a config event is one long `data:` line.
    const n = text.length;
    let start = 0;
    if (this.#sawCr && n > 0) {
      // The LF of a CRLF whose CR ended the previous chunk.
      this.#sawCr = false;
      if (text.charCodeAt(0) === 10 /* \n */) start = 1;
    }
    let lf = text.indexOf('\n', start);
    let cr = text.indexOf('\r', start);
    while (lf >= 0 || cr >= 0) {
      const atCr = cr >= 0 && (lf < 0 || cr < lf);
      const end = atCr ? cr : lf;
      this.#line(this.#buf + text.slice(start, end));
      this.#buf = '';
      start = end + 1;
      if (atCr) {
        if (start >= n) this.#sawCr = true;
        else if (text.charCodeAt(start) === 10) start++;
      }
      if (lf >= 0 && lf < start) lf = text.indexOf('\n', start);
      if (cr >= 0 && cr < start) cr = text.indexOf('\r', start);
    }
    if (start < n) {
      this.#buf += text.slice(start);
      if (this.#buf.length > this.#maxLine) throw new RangeError(`SSE line longer than ${this.#maxLine} characters`);
    }
  }

  /** Ends the stream: an incomplete last event is discarded, as the spec says. */
  end(): void {
    this.#decoder.decode();
    this.#buf = '';
    this.#event = '';
    this.#data = [];
    this.#dataChars = 0;
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      this.#h.onComment?.(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* space */) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#event = value;
        break;
      case 'data':
        // An event is kept until its blank line: one that never ends must not grow without bound.
        this.#dataChars += value.length + 1;
        if (this.#dataChars > this.#maxLine) throw new RangeError(`SSE event longer than ${this.#maxLine} characters`);
        this.#data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.#id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.#retry = Number(value);
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  #dispatch(): void {
    const data = this.#data;
    const event = this.#event;
    const retry = this.#retry;
    this.#data = [];
    this.#dataChars = 0;
    this.#event = '';
    this.#retry = undefined;
    if (data.length === 0) return;
    this.#h.onEvent({ event: event === '' ? 'message' : event, data: data.join('\n'), id: this.#id, ...(retry === undefined ? {} : { retry }) });
  }
}
