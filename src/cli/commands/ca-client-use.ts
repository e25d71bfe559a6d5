/**
 * What `meshlet ca issue` prints after the files: how to call a mesh server with them.
 *
 * @module
 */
import { out } from '../args.ts';

/**
 * How to call a mesh server (`mesh.createServer`) with an issued certificate. A workload's
 * certificate names a SPIFFE ID (a URI SAN) and no host name, so curl's host name check of the
 * server cannot pass (`curl: (60) … unable to obtain common name from peer certificate`): curl gets
 * `-k` (the mesh server still checks the client's certificate and SPIFFE ID); `openssl s_client`
 * verifies the server's chain against the trust bundle, with no host name to check.
 */
export function printClientUse(files: { readonly certFile: string; readonly keyFile: string; readonly caFile: string }): void {
  out('Call a mesh server (mesh.createServer) with it:');
  out(`  curl -k --cert ${files.certFile} --key ${files.keyFile} https://<host>:<port>/`);
  out("    (-k: a mesh server's certificate names a SPIFFE ID, not a host name, so curl's host name check");
  out('    cannot pass; the server still verifies this certificate and its SPIFFE ID)');
  out(`  openssl s_client -connect <host>:<port> -cert ${files.certFile} -key ${files.keyFile} -CAfile ${files.caFile} -verify_return_error`);
  out("    (also verifies the server's certificate chain against the trust bundle)");
}
