/**
 * `meshlet validate --control-plane <url>` (alias `analyze`): the files analysed together with the
 * config a control plane serves, as `istioctl analyze file.yaml` analyses a file together with
 * the cluster's resources (its `--use-kube`, on by default): a VirtualService that routes to a
 * subset the live DestinationRule defines is fine, one whose subset no DestinationRule defines is
 * IST0101 — before it is applied. A resource in the files replaces the served one of the same
 * kind, namespace and name (keeping its `creationTimestamp`, as `meshlet apply` does), so the
 * result is the config the files would make once applied. Without files: the served config alone.
 *
 * @module
 */
import type { IssueList, RawDocument } from '../config/issues.ts';
import { checkDocuments, type LoadConfigOptions, type LoadedConfig } from '../config/load-config.ts';
import { RESOURCES_PATH, type WireResource } from '../control-plane/protocol.ts';
import { type ClientTarget, call } from './client.ts';
import { RESOURCE_LIST_SHAPE } from './answer-shapes.ts';

/** The name issues give the served resources. */
export const LIVE_LABEL = '<control-plane>';

type Named = { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; creationTimestamp?: unknown } };

function keyOf(value: unknown, defaultNamespace: string): string | undefined {
  const v = value as Named | null;
  if (v === null || typeof v !== 'object' || typeof v.kind !== 'string' || typeof v.metadata?.name !== 'string') return undefined;
  return `${v.kind}/${typeof v.metadata.namespace === 'string' ? v.metadata.namespace : defaultNamespace}/${v.metadata.name}`;
}

/** `docs` (read from files) over what the control plane at `target` serves, validated and analysed as one config. */
export async function checkOverServed(docs: readonly RawDocument[], target: ClientTarget, options: LoadConfigOptions, issues: IssueList): Promise<LoadedConfig> {
  const served = ((await call(target, 'GET', RESOURCES_PATH, undefined, undefined, RESOURCE_LIST_SHAPE)) as { resources: WireResource[] }).resources;
  const live = new Map(served.map((r) => [keyOf(r, 'default')!, r]));
  const defaultNamespace = options.defaultNamespace ?? 'default';
  const given = docs.map((d) => {
    const key = keyOf(d.value, defaultNamespace);
    const was = key === undefined ? undefined : live.get(key);
    if (key !== undefined) live.delete(key);
    const v = d.value as Named;
    if (was?.metadata.creationTimestamp === undefined || v.metadata?.creationTimestamp !== undefined) return d;
    return { ...d, value: { ...v, metadata: { ...v.metadata, creationTimestamp: was.metadata.creationTimestamp } } };
  });
  const kept = [...live.values()].map((value) => ({ value, source: { file: LIVE_LABEL } }));
  return checkDocuments([...kept, ...given], options, issues);
}
