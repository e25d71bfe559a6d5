/**
 * The protobuf wire format, by hand, for the few small messages meshlet speaks without a
 * protobuf library: Istio's peer metadata (a `google.protobuf.Struct`) and Envoy's external
 * authorization Check. A writer that builds a message field by field, and a bounds-checked
 * reader that never runs past its end (malformed input is a `RangeError`).
 *
 * @module
 */

/** Builds one message; nested messages are writers of their own, given to {@link ProtoWriter.message}. */
export class ProtoWriter {
  readonly #parts: Buffer[] = [];
  #scratch: number[] = [];
  #length = 0;

  #flush(): void {
    if (this.#scratch.length === 0) return;
    const b = Buffer.from(this.#scratch);
    this.#parts.push(b);
    this.#length += b.length;
    this.#scratch = [];
  }

  #varint(n: number): void {
    let v = n;
    while (v > 0x7f) {
      this.#scratch.push((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    this.#scratch.push(v);
  }

  /** A non-negative integer field (uint32, uint64 below 2^53, a positive int32); 0 is left out, as proto3 does. */
  uint(field: number, n: number): void {
    if (n === 0) return;
    this.#varint(field << 3);
    this.#varint(n);
  }

  /** A fixed64 field (an OTLP timestamp in nanoseconds); 0 is left out, as proto3 does. */
  fixed64(field: number, n: bigint): void {
    if (n === 0n) return;
    this.#varint((field << 3) | 1);
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, n));
    for (const x of b) this.#scratch.push(x);
  }

  /** A length-delimited field, written even when empty (a oneof member). */
  bytes(field: number, b: Uint8Array): void {
    this.#varint((field << 3) | 2);
    this.#varint(b.length);
    this.#flush();
    this.#parts.push(Buffer.from(b.buffer, b.byteOffset, b.length));
    this.#length += b.length;
  }

  /** A string field; undefined or '' is left out, as proto3 does (use {@link bytes} for a oneof). */
  string(field: number, s: string | undefined): void {
    if (s === undefined || s === '') return;
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  /** A nested message. */
  message(field: number, w: ProtoWriter): void {
    this.bytes(field, w.finish());
  }

  /** The message's bytes. */
  finish(): Buffer {
    this.#flush();
    return Buffer.concat(this.#parts, this.#length);
  }
}

/** Reads one message (or a nested one, from {@link ProtoReader.sub}) field by field. */
export class ProtoReader {
  pos: number;
  readonly end: number;
  readonly #b: Uint8Array;

  constructor(b: Uint8Array, start = 0, end = b.length) {
    this.#b = b;
    this.pos = start;
    this.end = end;
  }

  /** True when every byte is read. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a number: exact below 2^53 (tags, lengths, enums, booleans; int32 fields use {@link int32}). */
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('protobuf: truncated varint');
      const byte = this.#b[this.pos++] as number;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return result;
      mul *= 128;
    }
    throw new RangeError('protobuf: varint too long');
  }

  /**
   * An int32 field: the varint's low 32 bits, signed. A negative int32 is written as a ten-byte
   * varint; read as a number it would be rounded (-1 would come out as 0).
   */
  int32(): number {
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('protobuf: truncated varint');
      const byte = this.#b[this.pos++] as number;
      // Bits 0..31 come from the first five bytes (the fifth gives bits 28..34; those past 31 fall off).
      if (i < 5) low |= (byte & 0x7f) << (7 * i);
      if (byte < 0x80) return low | 0;
    }
    throw new RangeError('protobuf: varint too long');
  }

  /** A fixed64 double. */
  double(): number {
    if (this.pos + 8 > this.end) throw new RangeError('protobuf: truncated field');
    const v = Buffer.from(this.#b.buffer, this.#b.byteOffset + this.pos, 8).readDoubleLE(0);
    this.pos += 8;
    return v;
  }

  /** A length-delimited field, as a reader of its own bytes. */
  sub(): ProtoReader {
    const len = this.varint();
    if (this.pos + len > this.end) throw new RangeError('protobuf: truncated field');
    const r = new ProtoReader(this.#b, this.pos, this.pos + len);
    this.pos += len;
    return r;
  }

  /** A string field (UTF-8). */
  string(): string {
    const r = this.sub();
    return Buffer.from(this.#b.buffer, this.#b.byteOffset + r.pos, r.end - r.pos).toString('utf8');
  }

  /** Skips a field's value of wire type `wire` (groups, 3 and 4, are refused). */
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.sub();
    else if (wire === 5) this.pos += 4;
    else throw new RangeError(`protobuf: unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new RangeError('protobuf: truncated field');
  }

  /** Calls `each(field, wireType)` for every field; `each` reads the value, or returns false to have it skipped. */
  fields(each: (field: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const tag = this.varint();
      const wire = tag & 7;
      if (!each(Math.floor(tag / 8), wire)) this.skip(wire);
    }
  }
}
