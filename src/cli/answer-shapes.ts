/**
 * What the CLI expects a control plane's JSON answers to be, checked before a command reads
 * them: valid JSON of another shape (another server on the port, a proxy's JSON error page, a
 * mesh's admin endpoint) is said so, naming the URL and what was expected, and the next URL is
 * tried — not read as if it were meshlet's (a TypeError, exit 70).
 *
 * @module
 */

/** An answer's expected shape: what it is called in a message, and the check. */
export interface AnswerShape {
  /** What was expected, for the message: `a meshlet status document`. */
  readonly what: string;
  is(v: unknown): boolean;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A resource as the control plane serves it: `kind` and `metadata.name` at least. */
function isResource(v: unknown): boolean {
  return isObject(v) && typeof v.kind === 'string' && isObject(v.metadata) && typeof v.metadata.name === 'string';
}

/** `GET /v1/status`: the fields `meshlet status` and `--wait` read. */
export const STATUS_SHAPE: AnswerShape = {
  what: 'a meshlet status document ({ server, configVersion, source, workloads, … })',
  is: (v) => isObject(v) && typeof v.server === 'string' && typeof v.configVersion === 'string' && isObject(v.source) && Array.isArray(v.workloads),
};

/** `GET /v1/workloads`: the registered WorkloadEntries. */
export const WORKLOADS_SHAPE: AnswerShape = {
  what: 'a list of registered workloads ({ workloads: [ … ] })',
  is: (v) => isObject(v) && Array.isArray(v.workloads),
};

/** `GET /v1/resources`: a listing. */
export const RESOURCE_LIST_SHAPE: AnswerShape = {
  what: 'a list of resources ({ resources: [ { kind, metadata, … } ] })',
  is: (v) => isObject(v) && Array.isArray(v.resources) && v.resources.every(isResource),
};

/** `GET /v1/resources/<kind>/<namespace>/<name>`: one resource. */
export const RESOURCE_SHAPE: AnswerShape = {
  what: 'a resource ({ kind, metadata: { name, … }, … })',
  is: isResource,
};

/** `POST /v1/resources`: what `meshlet apply` prints. */
export const APPLY_SHAPE: AnswerShape = {
  what: 'an apply result ({ version, applied: [ … ], warnings: [ … ] })',
  is: (v) => isObject(v) && typeof v.version === 'string' && Array.isArray(v.applied) && Array.isArray(v.warnings),
};

/** `DELETE /v1/resources/<kind>/<namespace>/<name>`: the new version. */
export const DELETE_SHAPE: AnswerShape = {
  what: 'a delete result ({ version, … })',
  is: (v) => isObject(v) && typeof v.version === 'string' && (v.warnings === undefined || Array.isArray(v.warnings)),
};

/** `GET /v1/ca` and a rotation's answer: the CA as `meshlet ca show` prints it. */
export const CA_SHAPE: AnswerShape = {
  what: 'the control plane CA ({ trustDomain, signer, chain, roots, … })',
  is: (v) => isObject(v) && typeof v.trustDomain === 'string' && isObject(v.signer) && Array.isArray(v.chain) && Array.isArray(v.roots),
};

/** `POST /v1/certificates`: an issued certificate. */
export const CERTIFICATE_SHAPE: AnswerShape = {
  what: 'an issued certificate ({ spiffeId, certChain, trustBundle: [ … ], … })',
  is: (v) => isObject(v) && typeof v.spiffeId === 'string' && typeof v.certChain === 'string' && Array.isArray(v.trustBundle),
};

/** What an answer is, in a few words, for the message: `an array`, `an object with keys a, b`. */
export function shapeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (isObject(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0) return 'an empty object';
    return `an object with ${keys.length === 1 ? 'key' : 'keys'} ${keys.slice(0, 5).join(', ')}${keys.length > 5 ? ', …' : ''}`;
  }
  return `a ${typeof v}`;
}
