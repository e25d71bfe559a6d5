/**
 * `<dataDir>/ca.json`, the replica's own copy of the CA. With etcd the shared CA wins and is
 * written there; a local CA with another signer (a former single control plane joining, another
 * cluster's data dir, a rotation made while this replica was down) is kept beside it, never
 * overwritten, and a warning names both signers and the backup.
 *
 * @module
 */
import { InvalidArgumentError } from '../../core/errors.ts';
import { writeFileAtomic } from '../../core/write-file-atomic.ts';
import { keepReplaced, readLocalFile } from '../data-dir.ts';
import type { ServerLogger } from '../logger.ts';
import { type CaState, describeCertificate, pemCertificates, sameCertificate } from './state.ts';

/** The text of `ca.json`; undefined when there is none. A file that cannot be read stops the start. */
export async function readLocalCa(file: string): Promise<string | undefined> {
  try {
    return await readLocalFile(file);
  } catch (err) {
    throw new InvalidArgumentError(`${file}: cannot read the CA (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

function signer(s: CaState): string {
  const c = describeCertificate(pemCertificates(s.certChain)[0]!);
  return `${c.subject}, SHA256 ${c.fingerprint}, generation ${s.generation}`;
}

/** Whether `a` and `b` sign with the same certificate and key. */
function sameSigner(a: CaState, b: CaState): boolean {
  return a.key.trim() === b.key.trim() && sameCertificate(pemCertificates(a.certChain)[0]!, pemCertificates(b.certChain)[0]!);
}

/**
 * Writes the CA the replica uses to `file` when it is not what is there. With `shared`, a local
 * CA with another signer is first kept as `ca.json.replaced-<UTC time>`, with a warning.
 */
export async function writeLocalCa(
  file: string,
  local: { readonly text: string; readonly state: CaState } | undefined,
  next: { readonly text: string; readonly state: CaState },
  o: { readonly shared: boolean; readonly logger?: ServerLogger; readonly now: number },
): Promise<void> {
  if (next.text === local?.text) return;
  if (o.shared && local !== undefined && !sameSigner(local.state, next.state)) {
    const backup = await keepReplaced(file, o.now);
    o.logger?.warn(
      `CA: ${file} holds another CA (${signer(local.state)}) than the one the replicas share in etcd (${signer(next.state)}) — a data dir of another control plane, or a rotation made while this replica was down. This replica signs with the shared CA; the local one, with its key, was kept as ${backup} (meshlet never deletes a CA key).`,
    );
  }
  await writeFileAtomic(file, next.text, { mode: 0o600 });
}
