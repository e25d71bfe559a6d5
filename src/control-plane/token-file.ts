/**
 * A control-plane token read from a file, again for every request to the control plane — as
 * istio-agent re-reads the projected service-account token it presents to istiod. A token
 * rotated on disk (a Kubernetes projected volume or secret, a file an operator replaces after
 * `meshlet token`) is used at once, with no restart: a mesh whose token expired or whose signing
 * key was rotated comes back on its next reconnect.
 *
 * @module
 */
import { readFileSync } from 'node:fs';

/** The token a file holds: its text without surrounding white space; an error names the file and why. */
export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the token file ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const token = text.trim();
  if (token === '') throw new Error(`the token file ${path} is empty`);
  if (/\s/.test(token)) throw new Error(`the token file ${path} holds more than one word (a token is one line, as \`meshlet token\` prints it)`);
  return token;
}

/**
 * A token source over `path`, read at every call. A read that fails (the file being replaced,
 * briefly absent) gives the last token read, and `warn` is told once per distinct failure.
 */
export function tokenFileSource(path: string, first: string, warn: (message: string) => void): () => string {
  let last = first;
  let said = '';
  return () => {
    try {
      last = readTokenFile(path);
      said = '';
    } catch (e) {
      const m = (e as Error).message;
      if (m !== said) warn(`meshlet: ${m}; the last token read from it is used`);
      said = m;
    }
    return last;
  };
}
