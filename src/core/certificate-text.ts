/**
 * A certificate's text: its SANs from Node's `subjectAltName` text, and as Envoy prints it (OpenSSL's
 * RFC 2253 names, the URL-encoded PEM) — shared by the SPIFFE identity, `x-forwarded-client-cert`
 * and the access-log TLS operators.
 *
 * @module
 */
/** PEM text as Envoy URL-encodes it (`urlEncodedPemEncodedPeerCertificate`, in XFCC and `%…_PEER_CERT%`): five characters escaped. */
export function urlEncodePem(pem: string): string {
  return pem.replaceAll('\n', '%0A').replaceAll(' ', '%20').replaceAll('+', '%2B').replaceAll('/', '%2F').replaceAll('=', '%3D');
}

/**
 * A subject in RFC 2253 form, as OpenSSL's `X509_NAME_print_ex(…, XN_FLAG_RFC2253)` prints it for
 * Envoy, from Node's `X509Certificate.subject` (one line per RDN, ` + ` between the attributes
 * of a multi-valued RDN, already escaped as RFC 2253 escapes them): the attributes last first,
 * `,` between RDNs and `+` within one, and every byte of a non-ASCII character as `\XX`.
 */
export function rfc2253(subject: string | undefined): string {
  // Node gives no subject (undefined) for an empty one, as Istio's workload certificates have.
  if (subject === undefined || subject === '') return '';
  const rdns = subject.split('\n');
  const out: string[] = [];
  for (let i = rdns.length - 1; i >= 0; i--) out.push((rdns[i] as string).split(' + ').reverse().join('+'));
  return escapeNonAscii(out.join(','));
}

function escapeNonAscii(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is what stays as it is.
  if (/^[\x00-\x7f]*$/.test(s)) return s;
  let out = '';
  for (const ch of s) {
    if (ch.charCodeAt(0) < 0x80) {
      out += ch;
      continue;
    }
    for (const b of Buffer.from(ch, 'utf8')) out += `\\${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The SANs of one type (`URI`, `DNS`, `IP Address`, …) of a certificate, from Node's `subjectAltName` text, in the certificate's order. */
export function sansOf(subjectAltName: string | undefined, type: string): string[] {
  if (subjectAltName === undefined || subjectAltName === '') return [];
  const out: string[] = [];
  // Entries are `TYPE:value` separated by ", "; a value with a comma is quoted (JSON).
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (let m = re.exec(subjectAltName); m !== null; m = re.exec(subjectAltName)) {
    if (m[1] !== type) continue;
    const v = m[2] as string;
    out.push(v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  return out;
}
