/**
 * A development CA kept in a directory (`meshlet ca init <dir>`), laid out as Istio's plugged-in
 * CA secret `cacerts` is, so the same directory also works as one:
 *
 * - `ca-cert.pem`: the CA's certificate (a self-signed root);
 * - `ca-key.pem`: its private key (mode 0600);
 * - `cert-chain.pem`: the chain from the CA up to its root (the root alone here);
 * - `root-cert.pem`: the trust bundle: every root workloads trust (the old and the new root while
 *   a rotation overlaps).
 *
 * Files are written atomically, the bundle first, so a workload watching the directory never sees
 * a certificate that its bundle does not trust.
 *
 * @module
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/write-file-atomic.ts';
import { CertificateAuthority, type WallClock } from './ca.ts';
import { parseCertificate } from './certificate.ts';
import type { KeyAlgorithm } from './keys.ts';
import { parsePemBundle } from './pem.ts';
import { readAllInOrder } from './read-all.ts';

/**
 * The files of a development CA directory.
 * @category Identity
 */
export const DEV_CA_FILES = Object.freeze({ cert: 'ca-cert.pem', key: 'ca-key.pem', chain: 'cert-chain.pem', bundle: 'root-cert.pem' });

/**
 * A development CA as read from its directory.
 * @category Identity
 */
export interface DevCa {
  readonly dir: string;
  readonly ca: CertificateAuthority;
  /** The trust domain: the root's `O=`. */
  readonly trustDomain: string;
  /** PEM of every trusted root, the CA's own first. */
  readonly bundlePem: string;
}

/** The trust domain a dev CA's certificate names (`O=<trust domain>`). */
export function trustDomainOf(certPem: string, file: string): string {
  const subject = parseCertificate(certPem, file).subject ?? '';
  const o = /^O=(.+)$/m.exec(subject)?.[1];
  if (o === undefined) throw new Error(`${file}: the CA certificate's subject has no O=<trust domain> (it was not made by meshlet ca init)`);
  return o;
}

async function readCaFile(dir: string, name: string): Promise<string> {
  const file = join(dir, name);
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file} is missing: ${dir} is not a development CA (make one with \`meshlet ca init ${dir}\`)`);
    throw new Error(`${file} cannot be read: ${(e as Error).message}`);
  }
}

/**
 * Reads a development CA directory; throws naming the file and what is wrong (missing, not PEM,
 * a key that is not the certificate's, a bundle that does not hold the CA's root).
 * @category Identity
 */
export async function loadDevCa(dir: string, clock?: WallClock): Promise<DevCa> {
  const [certPem, keyPem, bundle] = await readAllInOrder<[string, string, string]>([readCaFile(dir, DEV_CA_FILES.cert), readCaFile(dir, DEV_CA_FILES.key), readCaFile(dir, DEV_CA_FILES.bundle)]);
  const certFile = join(dir, DEV_CA_FILES.cert);
  const bundleFile = join(dir, DEV_CA_FILES.bundle);
  const roots = parsePemBundle(bundle);
  if (roots.length === 0) throw new Error(`${bundleFile} is not PEM (no "-----BEGIN CERTIFICATE-----" block)`);
  let ca: CertificateAuthority;
  try {
    ca = CertificateAuthority.load({ certChainPem: certPem, keyPem, rootsPem: bundle, ...(clock === undefined ? {} : { clock }) });
  } catch (e) {
    // Name the file the problem is in: the key, the bundle (the roots), else the CA certificate.
    const message = (e as Error).message;
    const file = /^the CA key/.test(message) ? DEV_CA_FILES.key : /\broots\b/.test(message) ? DEV_CA_FILES.bundle : DEV_CA_FILES.cert;
    const other = file === DEV_CA_FILES.key && /CA certificate/.test(message) ? ` in ${certFile}` : '';
    throw new Error(`${join(dir, file)}: ${message}${other}`);
  }
  const own = ca.rootPem;
  return { dir, ca, trustDomain: trustDomainOf(certPem, certFile), bundlePem: [own, ...roots.filter((r) => r !== own)].join('') };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link initDevCa} and {@link rotateDevCa}. */
export interface DevCaInitOptions {
  /** @defaultValue 'cluster.local' */
  readonly trustDomain?: string;
  /** The root's lifetime. @defaultValue 10 years */
  readonly ttlMs?: number;
  /** @defaultValue 'ECDSA-P256' */
  readonly keyAlgorithm?: KeyAlgorithm;
  readonly clock?: WallClock;
}

async function writeCa(dir: string, ca: CertificateAuthority, bundlePem: string): Promise<void> {
  // The bundle first: a workload that reads the new certificate already trusts its root.
  await writeFileAtomic(join(dir, DEV_CA_FILES.bundle), bundlePem);
  await writeFileAtomic(join(dir, DEV_CA_FILES.key), ca.keyPem, { mode: 0o600 });
  await writeFileAtomic(join(dir, DEV_CA_FILES.chain), ca.certPem + ca.chainPem);
  await writeFileAtomic(join(dir, DEV_CA_FILES.cert), ca.certPem);
}

/**
 * Makes a new development CA in `dir` (created if needed). Refuses a directory that already
 * holds one (any of its files), so a CA is never overwritten by mistake.
 * @category Identity
 */
export async function initDevCa(dir: string, o: DevCaInitOptions = {}): Promise<DevCa> {
  for (const name of Object.values(DEV_CA_FILES)) {
    if (await exists(join(dir, name))) throw new Error(`${join(dir, name)} exists: ${dir} already holds a CA (rotate it with \`meshlet ca rotate ${dir}\`, or choose another directory)`);
  }
  const ca = await CertificateAuthority.createRoot({ trustDomain: o.trustDomain ?? 'cluster.local', ...(o.ttlMs === undefined ? {} : { ttlMs: o.ttlMs }), ...(o.keyAlgorithm === undefined ? {} : { keyAlgorithm: o.keyAlgorithm }), ...(o.clock === undefined ? {} : { clock: o.clock }) });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeCa(dir, ca, ca.rootPem);
  return loadDevCa(dir);
}

/**
 * Rotates a development CA: a new root (same trust domain, unless told otherwise) signs from now
 * on, and the bundle holds the new root and every root it held before, so workloads trust
 * certificates from both during the overlap. {@link finalizeDevCaRotation} drops the old roots.
 * @category Identity
 */
export async function rotateDevCa(dir: string, o: Omit<DevCaInitOptions, 'trustDomain'> = {}): Promise<{ readonly before: DevCa; readonly after: DevCa }> {
  const before = await loadDevCa(dir);
  const ca = await CertificateAuthority.createRoot({ trustDomain: before.trustDomain, ...(o.ttlMs === undefined ? {} : { ttlMs: o.ttlMs }), ...(o.keyAlgorithm === undefined ? {} : { keyAlgorithm: o.keyAlgorithm }), ...(o.clock === undefined ? {} : { clock: o.clock }) });
  await writeCa(dir, ca, ca.rootPem + before.bundlePem);
  return { before, after: await loadDevCa(dir) };
}

/**
 * Ends a rotation: the bundle keeps only the CA's current root. Returns how many roots were dropped.
 * @category Identity
 */
export async function finalizeDevCaRotation(dir: string): Promise<{ readonly dropped: number; readonly after: DevCa }> {
  const before = await loadDevCa(dir);
  const dropped = parsePemBundle(before.bundlePem).length - 1;
  if (dropped > 0) await writeFileAtomic(join(dir, DEV_CA_FILES.bundle), before.ca.rootPem);
  return { dropped, after: await loadDevCa(dir) };
}
