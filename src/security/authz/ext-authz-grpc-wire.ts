/**
 * The wire format of Envoy's external authorization gRPC API (`envoy.service.auth.v3`,
 * `api/envoy/service/auth/v3/external_auth.proto` and `attribute_context.proto`): the
 * `CheckRequest` meshlet sends, written field by field, and the `CheckResponse` it reads. Only the
 * fields Envoy's HTTP filter fills or reads are handled; the field numbers are Envoy's. Hand-written
 * so that a mesh needs no `.proto` files or protobuf library at run time.
 *
 * @module
 */

/** `AttributeContext.Peer` as Envoy fills it. */
export interface CheckPeer {
  readonly address: string;
  readonly port: number;
  /** `service`: the `x-envoy-downstream-service-cluster` header (source only). */
  readonly service?: string;
  /** The certificate's URI SAN (TLS connections only). */
  readonly principal?: string;
}

/** What a `CheckRequest` carries. */
export interface CheckRequestInit {
  readonly source: CheckPeer;
  readonly destination: CheckPeer;
  /** When the request arrived, in milliseconds since the epoch. */
  readonly timeMs: number;
  readonly id: string;
  readonly method: string;
  /** Lower-cased names; repeated headers already joined with `,`. */
  readonly headers: Readonly<Record<string, string>>;
  readonly path: string;
  readonly host: string;
  readonly scheme: string;
  /** -1 when unknown. */
  readonly size: number;
  /** `HTTP/1.1`, `HTTP/2`. */
  readonly protocol: string;
}

/** `config.core.v3.HeaderValueOption`, as read. */
export interface HeaderOption {
  readonly key: string;
  readonly value: string;
  /** `append` (a `BoolValue`): undefined when unset. */
  readonly append: boolean | undefined;
  /** `append_action`: 0 APPEND_IF_EXISTS_OR_ADD, 1 ADD_IF_ABSENT, 2 OVERWRITE_IF_EXISTS_OR_ADD, 3 OVERWRITE_IF_EXISTS. */
  readonly appendAction: number;
}

/** A `CheckResponse`, as read. */
export interface CheckResponse {
  /** `status.code` (a gRPC code; 0 OK allows). */
  readonly code: number;
  readonly denied?: { readonly status: number; readonly headers: readonly HeaderOption[]; readonly body: string };
  readonly ok?: { readonly headers: readonly HeaderOption[]; readonly headersToRemove: readonly string[]; readonly responseHeadersToAdd: readonly HeaderOption[] };
}

// ── writing ──

class Writer {
  readonly parts: Buffer[] = [];
  #scratch: number[] = [];
  length = 0;

  #flushScratch(): void {
    if (this.#scratch.length === 0) return;
    const b = Buffer.from(this.#scratch);
    this.parts.push(b);
    this.length += b.length;
    this.#scratch = [];
  }

  varint(n: number): void {
    let v = n;
    while (v > 0x7f) {
      this.#scratch.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.#scratch.push(v);
  }

  /** A signed 64-bit varint (two's complement for negative values, as protobuf's int64). */
  int64(field: number, n: number): void {
    this.varint(field << 3);
    if (n >= 0) {
      this.varint(n);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(n));
    while (v > 0x7fn) {
      this.#scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#scratch.push(Number(v));
  }

  uint(field: number, n: number): void {
    if (n === 0) return;
    this.varint(field << 3);
    this.varint(n);
  }

  bytes(field: number, b: Buffer): void {
    this.varint((field << 3) | 2);
    this.varint(b.length);
    this.#flushScratch();
    this.parts.push(b);
    this.length += b.length;
  }

  string(field: number, s: string | undefined): void {
    if (s === undefined || s === '') return;
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  message(field: number, w: Writer): void {
    this.bytes(field, w.finish());
  }

  finish(): Buffer {
    this.#flushScratch();
    return Buffer.concat(this.parts, this.length);
  }
}

function peer(p: CheckPeer): Writer {
  const sock = new Writer();
  sock.string(2, p.address);
  sock.uint(3, p.port);
  const address = new Writer();
  address.message(1, sock);
  const w = new Writer();
  w.message(1, address);
  w.string(2, p.service);
  w.string(4, p.principal);
  return w;
}

/** Serializes an `envoy.service.auth.v3.CheckRequest`. */
export function encodeCheckRequest(r: CheckRequestInit): Buffer {
  const http = new Writer();
  http.string(1, r.id);
  http.string(2, r.method);
  for (const k of Object.keys(r.headers)) {
    const entry = new Writer();
    entry.string(1, k);
    entry.string(2, r.headers[k]);
    http.message(3, entry);
  }
  http.string(4, r.path);
  http.string(5, r.host);
  http.string(6, r.scheme);
  if (r.size !== 0) http.int64(9, r.size);
  http.string(10, r.protocol);
  const time = new Writer();
  const seconds = Math.floor(r.timeMs / 1000);
  time.uint(1, seconds);
  time.uint(2, Math.round((r.timeMs - seconds * 1000) * 1e6));
  const request = new Writer();
  request.message(1, time);
  request.message(2, http);
  const attrs = new Writer();
  attrs.message(1, peer(r.source));
  attrs.message(2, peer(r.destination));
  attrs.message(4, request);
  const out = new Writer();
  out.message(1, attrs);
  return out.finish();
}

// ── reading ──

class Reader {
  pos: number;
  readonly #b: Buffer;
  readonly end: number;
  constructor(b: Buffer, start = 0, end = b.length) {
    this.#b = b;
    this.pos = start;
    this.end = end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('CheckResponse: truncated varint');
      const byte = this.#b[this.pos++] as number;
      // Past 2^53 the value is not exact: only for lengths, tags and enums, never that large (int32 fields use int32()).
      result += (byte & 0x7f) * mul;
      mul *= 128;
      if ((byte & 0x80) === 0) return result;
    }
    throw new RangeError('CheckResponse: varint too long');
  }

  /**
   * An int32 field's value: the varint's low 32 bits, signed (a negative int32 is written as a
   * ten-byte varint; reading it as a number would round it, and -1 could come out as 0 = OK).
   */
  int32(): number {
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('CheckResponse: truncated varint');
      const byte = this.#b[this.pos++] as number;
      // Bits 0..31 come from the first five bytes (the fifth gives bits 28..34; those past 31 fall off).
      if (i < 5) low |= (byte & 0x7f) << (7 * i);
      if ((byte & 0x80) === 0) return low | 0;
    }
    throw new RangeError('CheckResponse: varint too long');
  }

  sub(): Reader {
    const len = this.varint();
    if (this.pos + len > this.end) throw new RangeError('CheckResponse: truncated field');
    const r = new Reader(this.#b, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  string(): string {
    const r = this.sub();
    return this.#b.toString('utf8', r.pos, r.end);
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.sub();
    else if (wire === 5) this.pos += 4;
    else throw new RangeError(`CheckResponse: unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new RangeError('CheckResponse: truncated field');
  }

  /** Calls `each(field, wireType)` for every field; `each` reads the value or returns false to skip it. */
  fields(each: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const tag = this.varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      if (!each(field, wire)) this.skip(wire);
    }
  }
}

function headerOption(r: Reader): HeaderOption {
  let key = '';
  let value = '';
  let append: boolean | undefined;
  let appendAction = 0;
  r.fields((f, w) => {
    if (f === 1 && w === 2) {
      const h = r.sub();
      h.fields((hf, hw) => {
        if (hw !== 2) return false;
        if (hf === 1) key = h.string();
        else if (hf === 2) value = h.string();
        else return false;
        return true;
      });
      return true;
    }
    if (f === 2 && w === 2) {
      const b = r.sub();
      append = false;
      b.fields((bf, bw) => {
        if (bf !== 1 || bw !== 0) return false;
        append = b.varint() !== 0;
        return true;
      });
      return true;
    }
    if (f === 3 && w === 0) {
      appendAction = r.int32();
      return true;
    }
    return false;
  });
  // Envoy's ext_authz takes `value` (raw_value is not read).
  return { key, value, append, appendAction };
}

/** Reads an `envoy.service.auth.v3.CheckResponse`; throws a RangeError on malformed bytes. */
export function decodeCheckResponse(b: Buffer): CheckResponse {
  const r = new Reader(b);
  let code = 0;
  let denied: CheckResponse['denied'];
  let ok: CheckResponse['ok'];
  r.fields((f, w) => {
    if (w !== 2) return false;
    if (f === 1) {
      const s = r.sub();
      s.fields((sf, sw) => {
        if (sf !== 1 || sw !== 0) return false;
        code = s.int32();
        return true;
      });
    } else if (f === 2) {
      const d = r.sub();
      let status = 0;
      const headers: HeaderOption[] = [];
      let body = '';
      d.fields((df, dw) => {
        if (dw !== 2) return false;
        if (df === 1) {
          const s = d.sub();
          s.fields((sf, sw) => {
            if (sf !== 1 || sw !== 0) return false;
            status = s.int32();
            return true;
          });
        } else if (df === 2) headers.push(headerOption(d.sub()));
        else if (df === 3) body = d.string();
        else return false;
        return true;
      });
      denied = { status, headers, body };
      ok = undefined;
    } else if (f === 3) {
      const o = r.sub();
      const headers: HeaderOption[] = [];
      const headersToRemove: string[] = [];
      const responseHeadersToAdd: HeaderOption[] = [];
      o.fields((of, ow) => {
        if (ow !== 2) return false;
        if (of === 2) headers.push(headerOption(o.sub()));
        else if (of === 5) headersToRemove.push(o.string());
        else if (of === 6) responseHeadersToAdd.push(headerOption(o.sub()));
        else return false;
        return true;
      });
      ok = { headers, headersToRemove, responseHeadersToAdd };
      denied = undefined;
    } else return false;
    return true;
  });
  return { code, ...(denied === undefined ? {} : { denied }), ...(ok === undefined ? {} : { ok }) };
}
