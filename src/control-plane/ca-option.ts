/**
 * The CA that verifies an `https://` control plane (`createMesh({ controlPlaneCa })`,
 * `$MESHLET_CONTROL_PLANE_CA`, the CLI's `--control-plane-ca`): PEM text or a PEM file, checked
 * when it is given, so a wrong one fails at start naming it rather than at the first handshake.
 *
 * @module
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The environment variable holding the control plane's CA (a PEM file's path, or PEM text). */
export const CONTROL_PLANE_CA_ENV = 'MESHLET_CONTROL_PLANE_CA';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads the CA given as PEM text or a file path (`from` names where it was given, for the
 * error); throws an `Error` naming it when it cannot be read or holds no certificate.
 */
export function readControlPlaneCa(value: string, from: string): string {
  let text = value;
  if (!value.includes('-----BEGIN')) {
    try {
      text = readFileSync(value, 'utf8');
    } catch (err) {
      throw new Error(`${from} ${value}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
  }
  const where = text === value ? from : `${from} ${value}`;
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new Error(`${where}: holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new Error(`${where}: certificate ${i + 1} does not parse (${(err as Error).message})`, { cause: err });
    }
  }
  return blocks.join('\n');
}

/**
 * The CA for these control-plane URLs: `value`, else `$MESHLET_CONTROL_PLANE_CA`, else
 * undefined (the system's CAs). Refuses a CA with an `http://` URL: it would verify nothing, and
 * the token would cross in plaintext.
 */
export function controlPlaneCaFor(urls: readonly string[], value: string | undefined, option: string): string | undefined {
  const env = process.env[CONTROL_PLANE_CA_ENV];
  const given = value ?? (env === '' ? undefined : env);
  if (given === undefined) return undefined;
  const from = value === undefined ? `$${CONTROL_PLANE_CA_ENV}` : option;
  const plain = urls.find((u) => u.startsWith('http:'));
  if (plain !== undefined) throw new Error(`${from} verifies an https:// control plane, but ${plain} is plain HTTP: use its https:// URL (meshlet control-plane --tls auto, or --tls-cert/--tls-key)`);
  return readControlPlaneCa(given, from);
}
