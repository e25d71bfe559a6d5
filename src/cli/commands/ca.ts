/**
 * `meshlet ca`: a development CA kept in a directory — make one, show it, issue a certificate
 * for a test identity, rotate its root (with an overlapping trust bundle), finalize the rotation.
 *
 * The target is a directory today; a `--control-plane <url>` target (the control plane's CA) is
 * meant to plug in next to it: {@link caCommand} resolves the target before dispatching, and each
 * subcommand prints the same shapes whichever CA it talks to.
 *
 * @module
 */
import { createPrivateKey } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../config/duration.ts';
import { InvalidArgumentError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/write-file-atomic.ts';
import { spiffeUri } from '../../security/identity/spiffe.ts';
import { type CertificateInfo, certificateInfo } from '../../security/pki/certificate.ts';
import { createCsr } from '../../security/pki/csr.ts';
import { DEV_CA_FILES, type DevCa, finalizeDevCaRotation, initDevCa, loadDevCa, rotateDevCa } from '../../security/pki/dev-ca.ts';
import { generateKeyPair, type KeyAlgorithm } from '../../security/pki/keys.ts';
import { parsePemBundle } from '../../security/pki/pem.ts';
import { printClientUse } from './ca-client-use.ts';
import { out, UsageError } from '../args.ts';
import { CLIENT_OPTIONS, CONTROL_PLANE_ENV, clientTarget } from '../client.ts';
import { OUTPUT_HELP, OUTPUT_OPTION, type OutputFormat, outputFormat, printDocument } from '../output.ts';

export const caHelp = `Usage: meshlet ca <init|show|issue|rotate> <dir> [options]
       meshlet ca <show|issue|rotate> --control-plane <url> [--token <admin token>] [options]

A development CA in a directory, for laptops, tests and CI (docs/identity.md). A mesh uses it with
createMesh({ identity: { devCa: '<dir>' } }): it issues itself a certificate and renews it.

  meshlet ca init <dir>      make a CA: a self-signed root (O=<trust domain>) and its key (0600),
                             ca-cert.pem, ca-key.pem, cert-chain.pem and root-cert.pem (the trust
                             bundle); refuses a directory that already holds a CA
  meshlet ca show <dir>      the root: subject, trust domain, validity, fingerprint; the bundle's roots
  meshlet ca issue <dir> --namespace <ns> --service-account <sa>
                             issue a certificate for spiffe://<trust domain>/ns/<ns>/sa/<sa>:
                             writes <out>.crt (certificate), <out>.key (key, 0600) and <out>.ca.crt
                             (trust bundle) — usable by curl, openssl, or identity: { certFile, … }
  meshlet ca rotate <dir>    a new root signs from now on; the bundle holds the new and the old
                             roots, so workloads trust both while they renew
  meshlet ca rotate <dir> --finalize
                             end the rotation: the bundle keeps only the current root

With --control-plane, the subcommands act on the control plane's CA (docs/control-plane.md):
  show                       its signing certificate, chain, roots, certificate lifetime
  issue -n <ns> --service-account <sa>
                             an admin-issued certificate for any identity (the key is made here;
                             --ttl at most the control plane's --cert-ttl, default its lifetime)
  rotate [--ca-cert <f> --ca-key <f> [--ca-root <f>]] [--overlap <duration>]
                             a new root (generated, or the given CA) signs from now on; the bundle
                             (old and new roots) is pushed to every workload at once; with
                             --overlap (at least the certificate lifetime) it finalizes by itself
  rotate --finalize          drop the old roots; the bundle is pushed again

Options:
      --control-plane <url[,url]>  the control plane (default: $MESHLET_CONTROL_PLANE)
      --token <token>            an admin token; show also takes a viewer token (default: $MESHLET_TOKEN)
      --control-plane-ca <file>  the CA that verifies an https:// control plane (its
                                 <data-dir>/root-cert.pem for --tls auto; default:
                                 $MESHLET_CONTROL_PLANE_CA, else the system's CAs)
      --ca-cert, --ca-key, --ca-root <file>
                                 rotate --control-plane: the CA to sign with from now on
      --trust-domain <td>        init: the trust domain (default: cluster.local)
      --ttl <duration>           init, rotate: the root's lifetime (default: 87600h, 10 years);
                                 issue: the certificate's (default: 1h); e.g. 30m, 24h, 30d
      --key <ecdsa-p256|rsa-2048>  the new key's algorithm (default: ecdsa-p256)
  -n, --namespace <ns>           issue: the identity's namespace
      --service-account <sa>     issue: the identity's service account
      --out <prefix>             issue: where to write (default: ./<ns>.<sa>)
      --finalize                 rotate: drop the old roots from the bundle
${OUTPUT_HELP}
Exits 1 when the CA cannot be read or written, 2 on a usage mistake.
`;

const SUBCOMMANDS = ['init', 'show', 'issue', 'rotate'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

function parseTtl(flag: string, text: string): number {
  const days = /^(\d+(?:\.\d+)?)d$/.exec(text);
  const ms = days !== null ? Number(days[1]) * 86_400_000 : parseDuration(text);
  if (typeof ms !== 'number') throw new UsageError(`${flag}: ${ms.error}`);
  if (ms < 1000) throw new UsageError(`${flag}: must be at least 1s, got "${text}"`);
  return ms;
}

function keyAlgorithm(text: string | undefined): KeyAlgorithm | undefined {
  if (text === undefined) return undefined;
  const k = text.toLowerCase();
  if (k === 'ecdsa-p256') return 'ECDSA-P256';
  if (k === 'rsa-2048') return 'RSA-2048';
  throw new UsageError(`--key: expected ecdsa-p256 or rsa-2048, got "${text}"`);
}

/** A DNS-label-ish name part of a SPIFFE ID: no '/', no spaces, not empty. */
function idPart(flag: string, v: string | undefined): string {
  if (v === undefined || v === '') throw new UsageError(`meshlet ca issue: ${flag} is required`);
  if (!/^[A-Za-z0-9._-]+$/.test(v)) throw new UsageError(`${flag}: "${v}" is not a Kubernetes name (letters, digits, '.', '_', '-')`);
  return v;
}

function days(ms: number): string {
  const d = ms / 86_400_000;
  return d >= 2 ? `${Math.floor(d)} days` : `${Math.floor(ms / 3_600_000)} h ${Math.floor((ms % 3_600_000) / 60_000)} min`;
}

function validity(info: CertificateInfo, now: number): string {
  const left = info.notAfter - now;
  const state = left <= 0 ? 'EXPIRED' : info.notBefore > now ? 'not yet valid' : `expires in ${days(left)}`;
  return `${new Date(info.notBefore).toISOString()} → ${new Date(info.notAfter).toISOString()} (${state})`;
}

function keyDescription(keyPem: string): string {
  const k = createPrivateKey(keyPem);
  if (k.asymmetricKeyType === 'ec') return `ECDSA ${k.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'P-256' : (k.asymmetricKeyDetails?.namedCurve ?? '')}`;
  if (k.asymmetricKeyType === 'rsa') return `RSA ${k.asymmetricKeyDetails?.modulusLength ?? ''}`;
  return k.asymmetricKeyType ?? 'unknown';
}

/** The CA as data: the `-o json|yaml` shape of init, show and rotate. */
function caDocument(ca: DevCa): Record<string, unknown> {
  const root = certificateInfo(ca.ca.rootPem);
  return {
    dir: resolve(ca.dir),
    trustDomain: ca.trustDomain,
    root: { subject: root.subject, serial: root.serial, notBefore: new Date(root.notBefore).toISOString(), notAfter: new Date(root.notAfter).toISOString(), fingerprintSha256: root.fingerprint, key: keyDescription(ca.ca.keyPem) },
    bundle: parsePemBundle(ca.bundlePem).map((pem) => {
      const i = certificateInfo(pem);
      return { subject: i.subject, serial: i.serial, notAfter: new Date(i.notAfter).toISOString(), fingerprintSha256: i.fingerprint, current: pem === ca.ca.rootPem };
    }),
    files: { cert: DEV_CA_FILES.cert, key: DEV_CA_FILES.key, chain: DEV_CA_FILES.chain, bundle: DEV_CA_FILES.bundle },
  };
}

function printCa(ca: DevCa, now: number): void {
  const root = certificateInfo(ca.ca.rootPem);
  out(`Directory:     ${resolve(ca.dir)}`);
  out(`Subject:       ${root.subject}`);
  out(`Trust domain:  ${ca.trustDomain} (identities spiffe://${ca.trustDomain}/ns/<namespace>/sa/<service account>)`);
  out(`Serial:        ${root.serial}`);
  out(`Valid:         ${validity(root, now)}`);
  out(`Fingerprint:   SHA256 ${root.fingerprint}`);
  out(`Key:           ${keyDescription(ca.ca.keyPem)}`);
  const roots = parsePemBundle(ca.bundlePem);
  out(`Bundle:        ${roots.length} root${roots.length === 1 ? '' : 's'} (${DEV_CA_FILES.bundle})${roots.length > 1 ? ` — a rotation is in progress; finish it with 'meshlet ca rotate ${ca.dir} --finalize'` : ''}`);
  for (const pem of roots) {
    const i = certificateInfo(pem);
    out(`  ${pem === ca.ca.rootPem ? '*' : '-'} ${i.subject}  SHA256 ${i.fingerprint}  until ${new Date(i.notAfter).toISOString()}${pem === ca.ca.rootPem ? '  (signs)' : ''}`);
  }
}

async function wrap<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new InvalidArgumentError(`ca ${what}: ${(e as Error).message}`, { cause: e });
  }
}

type Values = {
  'trust-domain'?: string | undefined;
  ttl?: string | undefined;
  key?: string | undefined;
  namespace?: string | undefined;
  'service-account'?: string | undefined;
  out?: string | undefined;
  finalize?: boolean | undefined;
};

function refuse(sub: Subcommand, values: Values, allowed: readonly (keyof Values)[]): void {
  for (const k of Object.keys(values) as (keyof Values)[]) {
    if (values[k] !== undefined && !allowed.includes(k)) throw new UsageError(`meshlet ca ${sub}: --${k} does not apply to ${sub}`);
  }
}

async function onDirectory(sub: Subcommand, dir: string, values: Values, format: OutputFormat | undefined): Promise<number> {
  const now = Date.now();
  switch (sub) {
    case 'init': {
      refuse(sub, values, ['trust-domain', 'ttl', 'key']);
      const ttlMs = values.ttl === undefined ? undefined : parseTtl('--ttl', values.ttl);
      const ca = await wrap('init', () => initDevCa(dir, { trustDomain: values['trust-domain'] ?? 'cluster.local', ttlMs, keyAlgorithm: keyAlgorithm(values.key) }));
      if (format !== undefined) {
        printDocument(format, caDocument(ca));
        return 0;
      }
      out(`Made a development CA in ${resolve(dir)}.`);
      printCa(ca, Date.now()); // after the CA was made: its notBefore is not later than this
      out('');
      out(`Use it: createMesh({ …, identity: { devCa: ${JSON.stringify(dir)} } }), or 'meshlet ca issue ${dir} -n <ns> --service-account <sa>'.`);
      return 0;
    }
    case 'show': {
      refuse(sub, values, []);
      const ca = await wrap('show', () => loadDevCa(dir));
      if (format !== undefined) printDocument(format, caDocument(ca));
      else printCa(ca, now);
      return 0;
    }
    case 'issue': {
      refuse(sub, values, ['namespace', 'service-account', 'ttl', 'out', 'key']);
      const namespace = idPart('--namespace', values.namespace);
      const serviceAccount = idPart('--service-account', values['service-account']);
      const ttlMs = values.ttl === undefined ? 3_600_000 : parseTtl('--ttl', values.ttl);
      const prefix = values.out ?? `${namespace}.${serviceAccount}`;
      const alg = keyAlgorithm(values.key) ?? 'ECDSA-P256';
      const result = await wrap('issue', async () => {
        const ca = await loadDevCa(dir);
        const spiffeId = spiffeUri({ trustDomain: ca.trustDomain, namespace, serviceAccount });
        const keys = generateKeyPair(alg);
        const issued = await ca.ca.sign(await createCsr(keys, { spiffeId }), { spiffeId, ttlMs, now });
        const files = { certFile: resolve(`${prefix}.crt`), keyFile: resolve(`${prefix}.key`), caFile: resolve(`${prefix}.ca.crt`) };
        await mkdir(dirname(files.certFile), { recursive: true });
        await writeFileAtomic(files.keyFile, keys.privateKeyPem, { mode: 0o600 });
        await writeFileAtomic(files.certFile, issued.certChainPem);
        await writeFileAtomic(files.caFile, ca.bundlePem);
        return { spiffeId, issued, files, serial: certificateInfo(issued.certChainPem).serial };
      });
      if (format !== undefined) {
        printDocument(format, { spiffeId: result.spiffeId, serial: result.serial, notBefore: new Date(result.issued.notBefore).toISOString(), notAfter: new Date(result.issued.notAfter).toISOString(), ...result.files });
        return 0;
      }
      out(`Issued ${result.spiffeId}`);
      out(`  valid ${new Date(result.issued.notBefore).toISOString()} → ${new Date(result.issued.notAfter).toISOString()}, serial ${result.serial}`);
      out(`  certificate  ${result.files.certFile}`);
      out(`  key          ${result.files.keyFile}`);
      out(`  trust bundle ${result.files.caFile}`);
      printClientUse(result.files);
      return 0;
    }
    case 'rotate': {
      refuse(sub, values, values.finalize === true ? ['finalize'] : ['ttl', 'key', 'finalize']);
      if (values.finalize === true) {
        const { dropped, after } = await wrap('rotate --finalize', () => finalizeDevCaRotation(dir));
        if (format !== undefined) printDocument(format, { ...caDocument(after), dropped });
        else out(dropped === 0 ? `Nothing to finalize: the bundle of ${resolve(dir)} holds only the current root.` : `Dropped ${dropped} old root${dropped === 1 ? '' : 's'} from the bundle; workloads trust only the current root once they reload it.`);
        return 0;
      }
      const ttlMs = values.ttl === undefined ? undefined : parseTtl('--ttl', values.ttl);
      const { after } = await wrap('rotate', () => rotateDevCa(dir, { ttlMs, keyAlgorithm: keyAlgorithm(values.key) }));
      if (format !== undefined) {
        printDocument(format, caDocument(after));
        return 0;
      }
      out('Rotated: a new root signs from now on; the bundle holds it and the old root(s), so workloads trust both while they renew.');
      printCa(after, Date.now());
      out('');
      out(`When every workload has a certificate from the new root: meshlet ca rotate ${dir} --finalize`);
      return 0;
    }
  }
}

/** Runs the command; returns the exit code. */
export async function caCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'trust-domain': { type: 'string' },
      ttl: { type: 'string' },
      key: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      'service-account': { type: 'string' },
      out: { type: 'string' },
      finalize: { type: 'boolean' },
      ...CLIENT_OPTIONS,
      'ca-cert': { type: 'string' },
      'ca-key': { type: 'string' },
      'ca-root': { type: 'string' },
      overlap: { type: 'string' },
      ...OUTPUT_OPTION,
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    out(caHelp);
    return 0;
  }
  const format = outputFormat(values.output);
  const [sub, dir, ...extra] = positionals;
  if (sub === undefined) throw new UsageError(`meshlet ca: give a subcommand (${SUBCOMMANDS.join(', ')}); run 'meshlet ca --help'`);
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) throw new UsageError(`meshlet ca: unknown subcommand "${sub}" (${SUBCOMMANDS.join(', ')})`);
  const { 'control-plane': cp, token, 'control-plane-ca': cpCa, 'ca-cert': caCert, 'ca-key': caKey, 'ca-root': caRoot, overlap, ...dirValues } = values;
  if (cp !== undefined) return controlPlaneCa(sub as Subcommand, positionals.slice(1), values, format);
  for (const [flag, v] of [['--token', token], ['--control-plane-ca', cpCa], ['--ca-cert', caCert], ['--ca-key', caKey], ['--ca-root', caRoot], ['--overlap', overlap]] as const) {
    if (v !== undefined) throw new UsageError(`meshlet ca ${sub}: ${flag} goes with --control-plane`);
  }
  if (dir === undefined) {
    // $MESHLET_CONTROL_PLANE alone does not pick the control plane's CA (a directory is the default meaning): say how.
    const env = process.env[CONTROL_PLANE_ENV];
    const cpHint = sub === 'init' ? '' : `, or --control-plane <url> for the control plane's CA${env === undefined || env === '' ? '' : ` ($${CONTROL_PLANE_ENV} is not used here: give --control-plane "$${CONTROL_PLANE_ENV}")`}`;
    throw new UsageError(`meshlet ca ${sub}: give the CA's directory (meshlet ca ${sub} <dir>)${cpHint}`);
  }
  if (extra.length > 0) throw new UsageError(`meshlet ca ${sub}: unexpected argument "${extra[0]}"`);
  const { output: _o, help: _h, ...rest } = dirValues;
  return onDirectory(sub as Subcommand, dir, rest, format);
}

/** `meshlet ca <sub> --control-plane <url>` (src/cli/commands/ca-control-plane.ts). */
async function controlPlaneCa(sub: Subcommand, args: string[], values: Values & Record<string, unknown>, format: OutputFormat | undefined): Promise<number> {
  if (args.length > 0) throw new UsageError(`meshlet ca ${sub}: give a directory or --control-plane, not both ("${args[0]}")`);
  if (sub === 'init') throw new UsageError("meshlet ca init: the control plane makes its CA at first start (or takes --ca-cert/--ca-key); 'init' is for a dev-CA directory");
  const allowed: Record<Exclude<Subcommand, 'init'>, readonly string[]> = {
    show: [],
    issue: ['namespace', 'service-account', 'ttl', 'out', 'key'],
    rotate: values.finalize === true ? ['finalize'] : ['finalize', 'ca-cert', 'ca-key', 'ca-root', 'overlap'],
  };
  for (const k of ['trust-domain', 'ttl', 'key', 'namespace', 'service-account', 'out', 'finalize', 'ca-cert', 'ca-key', 'ca-root', 'overlap']) {
    if (values[k] !== undefined && !allowed[sub].includes(k)) throw new UsageError(`meshlet ca ${sub} --control-plane: --${k} does not apply`);
  }
  const target = clientTarget(values as { 'control-plane'?: string; token?: string; 'control-plane-ca'?: string });
  const { caOnControlPlane } = await import('./ca-control-plane.ts');
  return caOnControlPlane(
    sub,
    target,
    {
      ...(sub === 'issue' ? { namespace: idPart('--namespace', values.namespace), serviceAccount: idPart('--service-account', values['service-account']) } : {}),
      ttlMs: values.ttl === undefined ? undefined : parseTtl('--ttl', values.ttl),
      out: values.out,
      keyAlgorithm: keyAlgorithm(values.key),
      finalize: values.finalize,
      caCert: values['ca-cert'] as string | undefined,
      caKey: values['ca-key'] as string | undefined,
      caRoot: values['ca-root'] as string | undefined,
      overlapMs: values.overlap === undefined ? undefined : parseTtl('--overlap', values.overlap as string),
    },
    format,
  );
}
