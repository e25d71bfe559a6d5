/**
 * The flags every replica sharing one store (etcd) must agree on, as istiod replicas share one
 * MeshConfig: `--trust-domain` (the identity in every certificate a replica issues: a workload
 * certified by a replica of another trust domain is refused by its peers) and `--root-namespace`
 * (whose policies apply to every workload: a replica with another one leaves out the mesh-wide
 * policies, e.g. a DENY, from what its workloads get). The first replica stores them
 * (`<prefix>/shared/replica-settings`); one started with others refuses to start, naming them.
 *
 * @module
 */
import { InvalidArgumentError } from '../core/errors.ts';
import type { SharedValues } from './store.ts';

/** The shared key, under `<prefix>/shared/`. */
export const REPLICA_SETTINGS_KEY = 'replica-settings';

/** What the replicas must agree on. */
export interface ReplicaSettings {
  readonly trustDomain: string;
  readonly rootNamespace: string;
}

const FLAGS: Record<keyof ReplicaSettings, string> = { trustDomain: '--trust-domain', rootNamespace: '--root-namespace' };

/**
 * Stores this replica's settings unless the replicas' are there; throws `InvalidArgumentError`
 * when they differ from this replica's. Without shared values (one control plane), nothing to agree on.
 */
export async function agreeOnSettings(shared: SharedValues | undefined, mine: ReplicaSettings): Promise<void> {
  if (shared === undefined) return;
  const stored = await shared.putIfAbsent(REPLICA_SETTINGS_KEY, JSON.stringify(mine));
  let theirs: Partial<ReplicaSettings>;
  try {
    theirs = JSON.parse(stored) as Partial<ReplicaSettings>;
  } catch {
    theirs = {};
  }
  const differ = (Object.keys(FLAGS) as (keyof ReplicaSettings)[]).filter((k) => typeof theirs[k] === 'string' && theirs[k] !== mine[k]);
  if (differ.length === 0) return;
  const what = differ.map((k) => `${FLAGS[k]} ${theirs[k]} (this one: ${mine[k]})`).join(' and ');
  throw new InvalidArgumentError(
    `the replicas that share this etcd run with ${what}: every replica must have the same ${differ.map((k) => FLAGS[k]).join(' and ')}. ` +
      `Start this one with ${differ.map((k) => `${FLAGS[k]} ${theirs[k]}`).join(' ')}; to change it for every replica, stop them all, ` +
      `delete <prefix>/shared/${REPLICA_SETTINGS_KEY} (etcdctl del /meshlet/shared/${REPLICA_SETTINGS_KEY}) and start them with the new flags`,
  );
}
