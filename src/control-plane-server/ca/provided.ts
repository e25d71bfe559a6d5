/**
 * A CA the operator provides instead of the generated one — a root, or an intermediate of their
 * own PKI (Istio's "plug in CA certificates": `ca-cert.pem`, `ca-key.pem`, `cert-chain.pem`,
 * `root-cert.pem`). Every file is read and checked at start, and a problem names the file and
 * what is wrong with it.
 *
 * @module
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError } from '../../core/errors.ts';
import { pemCertificates } from './state.ts';

/** The files of a provided CA (`--ca-cert`, `--ca-key`, `--ca-chain`, `--ca-root`). */
export interface ProvidedCaFiles {
  /** The certificate that signs workload certificates (PEM; may be followed by its chain). */
  readonly certFile: string;
  /** Its private key (PEM, PKCS#8 or PKCS#1/SEC1). */
  readonly keyFile: string;
  /** Intermediates from the signer's issuer up to the root (PEM; the root may be included). */
  readonly chainFile?: string;
  /** The root, when the chain does not end with it. */
  readonly rootFile?: string;
}

/** A checked CA in PEM. */
export interface CaMaterial {
  /** The signer, then intermediates up to (not including) the root. */
  readonly certChain: string;
  readonly key: string;
  readonly root: string;
}

async function read(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InvalidArgumentError(`${what} ${file}: cannot read it (${code ?? (err as Error).message})`, { cause: err });
  }
}

function certificates(text: string, where: string): X509Certificate[] {
  const pems = pemCertificates(text);
  if (pems.length === 0) throw new InvalidArgumentError(`${where}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
  return pems.map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch (err) {
      throw new InvalidArgumentError(`${where}: certificate ${i + 1} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
}

const selfSigned = (c: X509Certificate): boolean => c.checkIssued(c) && c.verify(c.publicKey);
const pem = (c: X509Certificate): string => `${c.toString().trim()}\n`;
const name = (c: X509Certificate): string => (c.subject ?? '').replaceAll('\n', ', ') || `the certificate with serial ${c.serialNumber} (empty subject)`;

/**
 * Checks a CA given as PEM text and returns it: the signer is a CA certificate, valid at `now`,
 * its key is its own, every certificate of the chain is issued and signed by the next, and the
 * chain ends at a self-signed root. `where` names each part in errors (a file, or a request field).
 */
export function checkCaMaterial(
  parts: { readonly cert: string; readonly key: string; readonly chain?: string; readonly root?: string },
  where: { readonly cert: string; readonly key: string; readonly chain: string; readonly root: string },
  now: number,
): CaMaterial {
  const [signer, ...rest] = certificates(parts.cert, where.cert) as [X509Certificate, ...X509Certificate[]];
  const chain = [...rest, ...(parts.chain === undefined ? [] : certificates(parts.chain, where.chain))];
  let key: KeyObject;
  try {
    key = createPrivateKey(parts.key);
  } catch (err) {
    throw new InvalidArgumentError(`${where.key}: not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
  if (!signer.ca) throw new InvalidArgumentError(`${where.cert}: ${name(signer)} is not a CA certificate (basicConstraints CA:TRUE is required to sign workload certificates)`);
  if (!signer.checkPrivateKey(key)) throw new InvalidArgumentError(`${where.key}: this key is not the key of the certificate in ${where.cert} (${name(signer)})`);
  if (Date.parse(signer.validTo) <= now) throw new InvalidArgumentError(`${where.cert}: ${name(signer)} expired on ${new Date(signer.validTo).toISOString()}`);
  if (Date.parse(signer.validFrom) > now) throw new InvalidArgumentError(`${where.cert}: ${name(signer)} is not valid before ${new Date(signer.validFrom).toISOString()}`);
  // Drop a repeated signer (cert-chain.pem usually starts with ca-cert.pem), then walk up.
  const links = chain.filter((c) => !c.raw.equals(signer.raw));
  let root: X509Certificate | undefined;
  if (parts.root !== undefined) {
    const roots = certificates(parts.root, where.root);
    if (roots.length !== 1) throw new InvalidArgumentError(`${where.root}: expected one root certificate, found ${roots.length}`);
    root = roots[0]!;
    if (!selfSigned(root)) throw new InvalidArgumentError(`${where.root}: ${name(root)} is not a self-signed root`);
  }
  const intermediates: X509Certificate[] = [];
  let at = signer;
  for (const c of links) {
    if (selfSigned(at)) break;
    if (!(at.checkIssued(c) && at.verify(c.publicKey))) {
      throw new InvalidArgumentError(`${where.chain}: ${name(at)} is not issued and signed by the next certificate of the chain, ${name(c)} (the chain must go from the signer up to the root, in order)`);
    }
    if (selfSigned(c)) {
      if (root !== undefined && !root.raw.equals(c.raw)) throw new InvalidArgumentError(`${where.root}: the chain ends at the root ${name(c)}, not at this one (${name(root)})`);
      root = c;
    } else intermediates.push(c);
    at = c;
  }
  if (selfSigned(signer)) {
    if (root !== undefined && !root.raw.equals(signer.raw)) throw new InvalidArgumentError(`${where.root}: the signer ${name(signer)} is itself a root, and not this one`);
    root = signer;
  } else if (root === undefined) {
    throw new InvalidArgumentError(`${where.chain}: the chain of ${name(signer)} does not end at a self-signed root; give the root (--ca-root) or a chain that ends with it (--ca-chain)`);
  } else if (!selfSigned(at) && !(at.checkIssued(root) && at.verify(root.publicKey))) {
    throw new InvalidArgumentError(`${where.root}: ${name(at)} is not issued by the root ${name(root)}; the chain is incomplete`);
  }
  for (const c of [...intermediates, root]) {
    if (Date.parse(c.validTo) <= now) throw new InvalidArgumentError(`${where.chain}: ${name(c)} expired on ${new Date(c.validTo).toISOString()}`);
  }
  return { certChain: [signer, ...intermediates].map(pem).join(''), key: key.export({ type: 'pkcs8', format: 'pem' }) as string, root: pem(root) };
}

/** Reads and checks the provided CA's files (see {@link checkCaMaterial}). */
export async function loadProvidedCa(files: ProvidedCaFiles, now: number): Promise<CaMaterial> {
  // Read in parallel, but report the first unreadable file in flag order: Promise.all would
  // reject with whichever read fails first, so the message would depend on I/O timing.
  const settled = await Promise.allSettled([
    read(files.certFile, '--ca-cert'),
    read(files.keyFile, '--ca-key'),
    files.chainFile === undefined ? undefined : read(files.chainFile, '--ca-chain'),
    files.rootFile === undefined ? undefined : read(files.rootFile, '--ca-root'),
  ]);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  const [cert, key, chain, root] = settled.map((r) => (r as PromiseFulfilledResult<string | undefined>).value) as [string, string, string | undefined, string | undefined];
  return checkCaMaterial(
    { cert, key, chain, root },
    { cert: `--ca-cert ${files.certFile}`, key: `--ca-key ${files.keyFile}`, chain: `--ca-chain ${files.chainFile ?? files.certFile}`, root: `--ca-root ${files.rootFile ?? '(not given)'}` },
    now,
  );
}
