/**
 * PEM: the text armour around DER (RFC 7468) — split a bundle into its certificates, wrap DER.
 *
 * @module
 */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, …) and its DER bytes. */
export interface PemBlock {
  readonly label: string;
  readonly der: Buffer;
}

/** Every PEM block in `text`, in order; text between blocks is ignored, as OpenSSL ignores it. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = (m[2] as string).replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error(`a PEM ${m[1]} block is not valid base64`);
    out.push({ label: m[1] as string, der: Buffer.from(body, 'base64') });
  }
  return out;
}

/** DER wrapped as PEM: base64 in 64-character lines, ending with a newline. */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * The certificates of a PEM bundle (a chain, a trust bundle), each as its own normalised PEM
 * string, in order. Blocks of other kinds (keys, parameters) are skipped; text that holds no
 * certificate gives an empty list. A `CERTIFICATE` block that is not valid base64 throws.
 * @category Identity
 */
export function parsePemBundle(pem: string): string[] {
  return pemBlocks(pem)
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b) => toPem('CERTIFICATE', b.der));
}

/** The DER of the one PEM block labelled `label` in `pem`; throws naming what is missing. */
export function derOf(pem: string, label: string, what: string): Buffer {
  const blocks = pemBlocks(pem).filter((b) => b.label === label);
  if (blocks.length === 0) throw new Error(`${what} is not PEM (no "-----BEGIN ${label}-----" block)`);
  return (blocks[0] as PemBlock).der;
}
