/**
 * The protocol of a Kubernetes Service port, decided as Istio decides it
 * (`pkg/config/kube/conversion.go` `ConvertProtocol` and `pkg/config/protocol/instance.go`
 * `Parse`): UDP ports are UDP; otherwise `appProtocol` if set, else the port name, is read up
 * to its first `-` (`http-web` → HTTP, `grpc-web…` → GRPC-Web); a name Istio does not know
 * leaves the protocol to auto-detection, except on the well-known TCP ports 25, 53, 3306 and
 * 27017.
 *
 * @module
 */

/** Istio's protocol names (`protocol.Instance`), as Istio spells them. */
export type IstioProtocol =
  | 'HTTP'
  | 'HTTP2'
  | 'HTTPS'
  | 'GRPC'
  | 'GRPC-Web'
  | 'HTTP_PROXY'
  | 'TCP'
  | 'TLS'
  | 'UDP'
  | 'Mongo'
  | 'Redis'
  | 'MySQL'
  | 'UnsupportedProtocol';

/**
 * Istio's name for a port whose protocol is not declared: the sidecar sniffs it. For routing,
 * Istio treats such a port as HTTP (`IsHTTPOrSniffed`: it gets the service's HTTP routes), and
 * so does meshlet, whose clients only send HTTP and gRPC.
 */
export const AUTO_PROTOCOL = 'UnsupportedProtocol';

/** `protocol.Parse`: a protocol name, ignoring case; anything else is {@link AUTO_PROTOCOL}. */
export function parseProtocol(name: string): IstioProtocol {
  switch (name.toLowerCase()) {
    case 'tcp':
      return 'TCP';
    case 'udp':
      return 'UDP';
    case 'grpc':
      return 'GRPC';
    case 'grpc-web':
      return 'GRPC-Web';
    case 'http':
      return 'HTTP';
    case 'http_proxy':
      return 'HTTP_PROXY';
    case 'http2':
      return 'HTTP2';
    case 'https':
      return 'HTTPS';
    case 'tls':
      return 'TLS';
    case 'mongo':
      return 'Mongo';
    case 'redis':
      return 'Redis';
    case 'mysql':
      return 'MySQL';
    // Istio also lists "DoubleHBONE", compared with the lower-cased name, so it never matches.
    default:
      return AUTO_PROTOCOL;
  }
}

/** Ports Istio never sniffs: without a declared protocol they are TCP (SMTP, DNS, MySQL, MongoDB). */
const WELL_KNOWN_TCP_PORTS: ReadonlySet<number> = new Set([25, 53, 3306, 27017]);

const GRPC_WEB = 'grpc-web';

/**
 * `kube.ConvertProtocol`: the Istio protocol of a Service port from its number, name, L4
 * `protocol` and `appProtocol`. `appProtocol`, when set, replaces the name entirely (an unknown
 * `appProtocol` does not fall back to the name), and Kubernetes' standard `kubernetes.io/h2c`,
 * `kubernetes.io/ws` and `kubernetes.io/wss` map to HTTP2, HTTP and HTTPS.
 */
export function convertProtocol(port: number, portName: string | undefined, l4: string | undefined, appProtocol: string | undefined): IstioProtocol {
  if (l4 === 'UDP') return 'UDP';
  let name = portName ?? '';
  if (appProtocol !== undefined) {
    name = appProtocol;
    switch (name) {
      case 'kubernetes.io/h2c':
        return 'HTTP2';
      case 'kubernetes.io/ws':
        return 'HTTP';
      case 'kubernetes.io/wss':
        return 'HTTPS';
    }
  }
  if (name.length >= GRPC_WEB.length && name.slice(0, GRPC_WEB.length).toLowerCase() === GRPC_WEB) return 'GRPC-Web';
  const dash = name.indexOf('-');
  if (dash >= 0) name = name.slice(0, dash);
  const p = parseProtocol(name);
  if (p === AUTO_PROTOCOL && WELL_KNOWN_TCP_PORTS.has(port)) return 'TCP';
  return p;
}
