/**
 * The embedded identity sources of `createMesh` (`identity: { certFile, keyFile, caFile }` or
 * `{ devCa }`): checked, started into the mesh's {@link CredentialHolder} before `createMesh`
 * resolves, and handed to the mesh, which stops them in `close()`. `'control-plane'` is the
 * control-plane client's; `'none'` starts nothing.
 *
 * @module
 */
import { InvalidArgumentError } from './core/errors.ts';
import type { Mesh } from './mesh.ts';
import type { IdentityOption, MeshLogger, MeshOptions } from './mesh-options.ts';
import { DevCaIdentitySource } from './security/identity/dev-ca-source.ts';
import { FileIdentitySource } from './security/identity/file-source.ts';
import type { IdentitySource } from './security/identity/source.ts';

const FILE_KEYS = { certFile: "the workload certificate's PEM file", keyFile: "its private key's PEM file", caFile: "the trusted roots' PEM file" } as const;

/** The embedded identity option, checked; undefined for `'control-plane'`, `'none'` or none given. Throws {@link InvalidArgumentError} naming the field. */
export function embeddedIdentity(o: MeshOptions): Exclude<IdentityOption, string> | undefined {
  const id = o.identity as unknown;
  if (id === undefined || id === 'none' || id === 'control-plane') return undefined;
  const shapes = "{ certFile, keyFile, caFile }, { devCa: '<dir made by meshlet ca init>' }, 'control-plane' or 'none'";
  if (id === null || typeof id !== 'object' || Array.isArray(id)) throw new InvalidArgumentError(`createMesh: \`identity\` must be ${shapes}, got ${JSON.stringify(id)}`);
  const rec = id as Record<string, unknown>;
  if ('devCa' in rec) {
    if (typeof rec['devCa'] !== 'string' || rec['devCa'] === '') throw new InvalidArgumentError('createMesh: `identity.devCa` must be a non-empty string (the directory made by `meshlet ca init`)');
    const extra = Object.keys(rec).filter((k) => k !== 'devCa');
    if (extra.length > 0) throw new InvalidArgumentError(`createMesh: \`identity\` is either { devCa } or { certFile, keyFile, caFile }; unexpected ${extra.map((k) => `\`${k}\``).join(', ')} next to devCa`);
    return { devCa: rec['devCa'] };
  }
  if (!Object.keys(rec).some((k) => k in FILE_KEYS)) throw new InvalidArgumentError(`createMesh: \`identity\` must be ${shapes}, got an object with ${Object.keys(rec).length === 0 ? 'no keys' : Object.keys(rec).map((k) => `\`${k}\``).join(', ')}`);
  for (const [k, what] of Object.entries(FILE_KEYS)) {
    if (typeof rec[k] !== 'string' || rec[k] === '') throw new InvalidArgumentError(`createMesh: \`identity.${k}\` must be a non-empty string (${what})`);
  }
  const extra = Object.keys(rec).filter((k) => !(k in FILE_KEYS));
  if (extra.length > 0) throw new InvalidArgumentError(`createMesh: \`identity\` { certFile, keyFile, caFile } has unexpected ${extra.map((k) => `\`${k}\``).join(', ')}`);
  return { certFile: rec['certFile'] as string, keyFile: rec['keyFile'] as string, caFile: rec['caFile'] as string };
}

/**
 * Starts the embedded identity source `o.identity` names (if any) into `mesh.credentials`, and
 * hands it to the mesh. When it cannot start, the mesh is closed and createMesh rejects with an
 * {@link InvalidArgumentError} saying which file is wrong and why.
 */
export async function startEmbeddedIdentity(mesh: Mesh, o: MeshOptions, logger: MeshLogger): Promise<Mesh> {
  const id = embeddedIdentity(o);
  if (id === undefined) return mesh;
  const log = { warn: (m: string) => logger.warn(m), info: logger.info === undefined ? undefined : (m: string) => logger.info?.(m) };
  const source: IdentitySource & { start(): Promise<void> } =
    'devCa' in id
      ? new DevCaIdentitySource({
          dir: id.devCa,
          trustDomain: o.trustDomain ?? 'cluster.local',
          namespace: o.namespace ?? 'default',
          serviceAccount: o.serviceAccount ?? 'default',
          holder: mesh.credentials,
          log,
          ...(o.clock === undefined ? {} : { clock: o.clock }),
        })
      : new FileIdentitySource({ files: id, holder: mesh.credentials, log, trustDomains: [o.trustDomain ?? 'cluster.local', ...(o.trustDomainAliases ?? [])] });
  try {
    await source.start();
  } catch (e) {
    await source.close();
    await mesh.close();
    throw new InvalidArgumentError(`createMesh: identity ${'devCa' in id ? `devCa ${id.devCa}` : 'files'}: ${(e as Error).message}`, { cause: e });
  }
  mesh.adoptIdentitySource(source);
  return mesh;
}
