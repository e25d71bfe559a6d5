/**
 * The wire format of Envoy's external authorization gRPC API (`envoy.service.auth.v3`,
 * `api/envoy/service/auth/v3/external_auth.proto` and `attribute_context.proto`): the
 * `CheckRequest` meshlet sends, written field by field, and the `CheckResponse` it reads. Only the
 * fields Envoy's HTTP filter fills or reads are handled; the field numbers are Envoy's. Written
 * with core/protobuf.ts, so that a mesh needs no `.proto` files or protobuf library at run time.
 *
 * @module
 */
import { ProtoReader, ProtoWriter } from '../../core/protobuf.ts';

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
  /** `HTTP/1.1`, `HTTP/2`. */
  readonly protocol: string;
  /** The bytes of the body read for the check (`size`), when it was. */
  readonly size?: number;
  /** The body as text (`body`) or as it came (`raw_body`, packAsBytes). */
  readonly body?: string;
  readonly rawBody?: Uint8Array;
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

function peer(p: CheckPeer): ProtoWriter {
  const sock = new ProtoWriter();
  sock.string(2, p.address);
  sock.uint(3, p.port);
  const address = new ProtoWriter();
  address.message(1, sock);
  const w = new ProtoWriter();
  w.message(1, address);
  w.string(2, p.service);
  w.string(4, p.principal);
  return w;
}

/** Serializes an `envoy.service.auth.v3.CheckRequest`. */
export function encodeCheckRequest(r: CheckRequestInit): Buffer {
  const http = new ProtoWriter();
  http.string(1, r.id);
  http.string(2, r.method);
  for (const k of Object.keys(r.headers)) {
    const entry = new ProtoWriter();
    entry.string(1, k);
    entry.string(2, r.headers[k]);
    http.message(3, entry);
  }
  http.string(4, r.path);
  http.string(5, r.host);
  http.string(6, r.scheme);
  // size (9): what was received when the check was made (left out, 0, when it was made on the headers alone).
  if (r.size !== undefined && r.size > 0) http.uint(9, r.size);
  http.string(10, r.protocol);
  if (r.body !== undefined && r.body !== '') http.string(11, r.body);
  if (r.rawBody !== undefined && r.rawBody.length > 0) http.bytes(12, r.rawBody);
  const time = new ProtoWriter();
  const seconds = Math.floor(r.timeMs / 1000);
  time.uint(1, seconds);
  time.uint(2, Math.round((r.timeMs - seconds * 1000) * 1e6));
  const request = new ProtoWriter();
  request.message(1, time);
  request.message(2, http);
  const attrs = new ProtoWriter();
  attrs.message(1, peer(r.source));
  attrs.message(2, peer(r.destination));
  attrs.message(4, request);
  const out = new ProtoWriter();
  out.message(1, attrs);
  return out.finish();
}

// ── reading ──

function headerOption(r: ProtoReader): HeaderOption {
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
  const r = new ProtoReader(b);
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
