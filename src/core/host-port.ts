/**
 * `address:port` as Envoy and istioctl write a socket address: an IPv6 address in brackets
 * (`[2001:db8::21]:15443`), so the port cannot be read as part of the address.
 */
export function formatHostPort(address: string, port: number | string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * An endpoint key less meshlet's `@locality` suffix (a network gateway that serves several
 * localities is one host per locality): the socket address Envoy would show for the host.
 */
export function keyAddress(key: string): string {
  const at = key.indexOf('@');
  return at < 0 ? key : key.slice(0, at);
}
