/**
 * The target of a `CONNECT` (RFC 9112 §3.2.3 authority-form), checked before it is judged: the
 * host judged (`hosts` rules, the Host header the app's `'connect'` listener reads) must be the
 * host the app reaches.
 *
 * @module
 */

/**
 * `host:port` as http_parser reads a host in connect mode (IS_HOST_CHAR: letters, digits, `.`,
 * `-`, `_`) or a bracketed IPv6 address, and a port: no userinfo, scheme, path or
 * percent-encoding, which node's URL would read as another host (`a%2eb.com`).
 */
const AUTHORITY_FORM = /^[A-Za-z0-9._-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/;

/**
 * Why `target` is not a CONNECT target the mesh judges, or undefined when it is one.
 *
 * As Envoy's HTTP/1 codec (http1/codec_impl.cc `handlePath` → utility.cc `Url::initialize` in
 * connect mode): exactly `host:port`, a port up to 65535 (meshlet also refuses leading zeros,
 * `:0443`, which a `hosts` rule naming `:443` would not match), and a bracketed host a valid IPv6
 * address (`parseAuthority(…).is_ip_address_`; `[1.2.3.4]:443` is refused). Envoy keeps any
 * other host as written, an address in another form than its canonical one included
 * (`2130706433:443`, `0x7f000001:443`, `127.1:443`, `010.0.0.1:443`, `[0:0::1]:443`); meshlet
 * refuses those too: the app's URL parser (`new URL('http://' + req.url)`) and the resolver
 * behind `net.connect` read them as the canonical address (127.0.0.1, 8.0.0.1, [::1]), which a
 * `hosts` rule — a string match, as Envoy's — does not see, so a DENY naming the address would
 * be passed by.
 */
export function connectTargetProblem(target: string): string | undefined {
  if (!AUTHORITY_FORM.test(target)) return 'is not host:port';
  const colon = target.lastIndexOf(':');
  const port = target.slice(colon + 1);
  if (Number(port) > 65535) return 'has a port above 65535';
  // A port with leading zeros (`:0443`) is judged as written, but the app's URL and net.connect read 443.
  if (port.length > 1 && port.startsWith('0')) return `has a port with leading zeros (write it as ${Number(port)})`;
  const host = target.slice(0, colon).toLowerCase();
  let read: string;
  try {
    // The WHATWG URL host parser: IPv4 in every form inet_aton takes, IPv6 compressed and lower-case.
    read = new URL(`http://${host}/`).hostname;
  } catch {
    return host.startsWith('[') ? 'names no valid IPv6 address' : 'has a host a URL parser refuses (a malformed address)';
  }
  if (read !== host) return `names the address ${read} in another form (an IP address is judged as written: write it as ${read})`;
  return undefined;
}
