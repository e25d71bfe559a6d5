/**
 * Throws at import when Node.js is older than meshlet needs (see `node-version.ts`). Imported
 * first by the main entry point, so the error names the real problem before undici loads.
 *
 * @module
 */
import { nodeTooOld } from './node-version.ts';

const tooOld = nodeTooOld(process.versions.node);
if (tooOld !== undefined) {
  const err = new Error(tooOld);
  (err as { code?: string }).code = 'MESHLET_ERR_NODE_VERSION';
  throw err;
}
