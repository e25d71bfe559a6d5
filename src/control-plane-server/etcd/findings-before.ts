/**
 * What a write of the etcd config store compares its findings with to tell which ones are new
 * with it (`apply-warnings.ts`): the findings of the config as the write read it. A replica's
 * served state comes from its watch, which may lag the read — another replica's apply committed
 * a moment ago is in the read but not yet in the served state, and the findings that apply
 * brought were reported again as this write's. The write first waits, for a bounded time, until
 * the watch has delivered (and checked) what the read saw; when it does not in time (etcd slow to
 * send, a large set being checked), the set as read is checked instead — the same answer, at the
 * cost of a check.
 *
 * This is how the Kubernetes API server serves a consistent list from its watch cache: it reads
 * the current revision from etcd, then waits until the cache has reached it
 * (staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go waitUntilFreshAndBlock).
 *
 * @module
 */
import type { ConfigIssue } from '../../config/issues.ts';
import type { CheckedSet } from './config-check.ts';
import type { PrefixWatch } from './watch.ts';

/** Where the findings before a write come from. */
export interface FindingsBefore {
  /** The replica's watch of the config. */
  readonly watch: PrefixWatch;
  /** The newest config change the read saw (`configRevisionOf`). */
  readonly revision: number;
  /** How long to wait for the watch. */
  readonly waitMs: number;
  /** The findings of the state the replica serves (read once the watch has caught up). */
  readonly served: () => readonly ConfigIssue[];
  /** Checks the set as read (the fallback). */
  readonly checkRead: () => Promise<CheckedSet>;
  readonly logger: { info?(message: string): void } | undefined;
  /** The write, for the log. */
  readonly origin: string;
}

/** The analysis findings of the config as the write read it. */
export async function findingsBefore(o: FindingsBefore): Promise<readonly ConfigIssue[]> {
  if (await o.watch.waitFor(o.revision, o.waitMs)) return o.served();
  o.logger?.info?.(
    `etcd config: ${o.origin}: this replica's watch is at revision ${o.watch.revision}, behind the read (revision ${o.revision}) after ${o.waitMs} ms; checking the config as read to tell which findings are new with the change`,
  );
  return (await o.checkRead()).state.findings;
}
