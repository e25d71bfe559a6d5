/**
 * Test certificates made with Debian's `openssl` command — an implementation independent of
 * meshlet's own CA, so a test of meshlet's TLS does not check meshlet against itself. Everything
 * is generated at test time in a temporary directory: a root (or intermediate) CA, and leaves
 * with a SPIFFE URI SAN (Istio's workload form), DNS SANs, any validity window (an expired
 * certificate is issued with dates in the past).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CredentialUpdate } from '../../src/security/identity/credentials.ts';

/** A CA: its certificate and key (PEM), and the files they are in. */
export interface TestCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM of the intermediates between this CA and its root (empty for a root). */
  readonly chainPem: string;
  /** The root's PEM (this CA's own for a root). */
  readonly rootPem: string;
  readonly dir: string;
}

/** A leaf certificate. */
export interface TestLeaf {
  readonly certPem: string;
  readonly keyPem: string;
  /** Leaf then intermediates. */
  readonly chainPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly chainFile: string;
}

const dirs: string[] = [];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'meshlet-pki-'));
  dirs.push(d);
  return d;
}

/** Removes every directory this helper made (call from `after()`). */
export function cleanupPki(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

function stamp(d: Date): string {
  // openssl ca's YYYYMMDDHHMMSSZ
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/** Options of a certificate's validity: `[notBefore, notAfter]`, default now-1h … now+1d. */
export interface Validity {
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

function window(v: Validity | undefined): [string, string] {
  const now = Date.now();
  return [stamp(v?.notBefore ?? new Date(now - 3600_000)), stamp(v?.notAfter ?? new Date(now + 86400_000))];
}

const CA_CONF = (dir: string, ext: string): string => `
[ca]
default_ca = local
[local]
dir = ${dir}
database = ${dir}/index.txt
serial = ${dir}/serial
new_certs_dir = ${dir}
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
commonName = optional
[req]
distinguished_name = dn
[dn]
[ext]
${ext}
`;

function sign(ca: TestCa | undefined, dir: string, name: string, subject: string, ext: string, v: Validity | undefined): { certPem: string; keyPem: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const crt = join(dir, `${name}.crt`);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], dir);
  const db = join(dir, `${name}-db`);
  execFileSync('mkdir', ['-p', db]);
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), `${BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000))}`.padStart(16, '0').slice(-16));
  const conf = join(db, 'openssl.cnf');
  writeFileSync(conf, CA_CONF(db, ext));
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr, '-config', conf], dir);
  const [start, end] = window(v);
  const signer = ca === undefined ? ['-selfsign', '-keyfile', key] : ['-cert', ca.certFile, '-keyfile', ca.keyFile];
  openssl(['ca', '-batch', '-notext', '-config', conf, '-extensions', 'ext', '-in', csr, '-out', crt, '-startdate', start, '-enddate', end, ...signer], dir);
  return { certPem: readFileSync(crt, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

/** A self-signed root CA (`O=<name>`), or an intermediate signed by `parent`. */
export function makeCa(o: { readonly name?: string; readonly parent?: TestCa; readonly validity?: Validity; readonly uris?: readonly string[] } = {}): TestCa {
  const dir = tempDir();
  const sans = (o.uris ?? []).map((u) => `URI:${u}`);
  const ext = `basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign, digitalSignature\nsubjectKeyIdentifier = hash${sans.length > 0 ? `\nsubjectAltName = ${sans.join(', ')}` : ''}`;
  const { certPem, keyPem } = sign(o.parent, dir, 'ca', `/O=${o.name ?? 'cluster.local'}`, ext, o.validity);
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  const chainPem = o.parent === undefined ? '' : certPem + o.parent.chainPem;
  return { certPem, keyPem, certFile, keyFile, chainPem, rootPem: o.parent?.rootPem ?? certPem, dir };
}

/** Options of {@link issueLeaf}. */
export interface LeafOptions {
  /** URI SANs, e.g. `spiffe://cluster.local/ns/foo/sa/bar`. */
  readonly uris?: readonly string[];
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly validity?: Validity;
  /** Subject, default `/O=meshlet-test`. */
  readonly subject?: string;
}

/** A leaf for servers and clients (serverAuth and clientAuth), signed by `ca`. */
export function issueLeaf(ca: TestCa, o: LeafOptions): TestLeaf {
  const dir = tempDir();
  const sans = [...(o.uris ?? []).map((u) => `URI:${u}`), ...(o.dns ?? []).map((d) => `DNS:${d}`), ...(o.ips ?? []).map((i) => `IP:${i}`)];
  const ext = ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment', 'extendedKeyUsage = serverAuth, clientAuth', ...(sans.length > 0 ? [`subjectAltName = critical, ${sans.join(', ')}`] : [])].join('\n');
  const { certPem, keyPem } = sign(ca, dir, 'leaf', o.subject ?? '/O=meshlet-test', ext, o.validity);
  const chainPem = certPem + ca.chainPem;
  const certFile = join(dir, 'leaf.crt');
  const keyFile = join(dir, 'leaf.key');
  const chainFile = join(dir, 'chain.crt');
  writeFileSync(chainFile, chainPem);
  return { certPem, keyPem, chainPem, certFile, keyFile, chainFile };
}

/** Istio's SPIFFE ID. */
export function spiffe(namespace: string, serviceAccount: string, trustDomain = 'cluster.local'): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** A workload's credentials issued by `ca` (trusting `trust`, default the CA's root), ready for a {@link CredentialHolder}. */
export function workloadCredentials(ca: TestCa, o: { readonly namespace: string; readonly serviceAccount: string; readonly trustDomain?: string; readonly validity?: Validity; readonly trust?: string }): CredentialUpdate & { readonly leaf: TestLeaf } {
  const id = spiffe(o.namespace, o.serviceAccount, o.trustDomain);
  const leaf = issueLeaf(ca, { uris: [id], validity: o.validity });
  const x = new X509Certificate(leaf.certPem);
  return { certChain: leaf.chainPem, privateKey: leaf.keyPem, trustBundle: o.trust ?? ca.rootPem, spiffeId: id, notBefore: Date.parse(x.validFrom), notAfter: Date.parse(x.validTo), leaf };
}
