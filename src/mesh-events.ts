/**
 * The events of a mesh and their payloads ({@link MeshEvents}); re-exported by mesh-options.ts.
 *
 * @module
 */
import type { ConfigIssue } from './config/issues.ts';
import type { ConfigAppliedEvent, ConnectedEvent, DisconnectedEvent } from './control-plane/source.ts';
import type { ConfigError } from './core/errors.ts';
import type { OutboundEvent } from './outbound/pipeline.ts';

/**
 * Event `rejected`: new config was refused; the last good config keeps serving. The same event in both modes.
 * @category Mesh
 */
export interface RejectedEvent {
  readonly issues: readonly ConfigIssue[];
  readonly error: ConfigError;
}

/**
 * Event `watch`: a watched config path can no longer be watched (its directory was deleted or
 * moved away; the last good config keeps serving, and the path is watched for its return), or
 * is watched again (it came back, or another directory took its place; it is reloaded).
 * @category Mesh
 */
export interface WatchStateEvent {
  /** The config path as given to `createMesh`. */
  readonly path: string;
  readonly watching: boolean;
  readonly message: string;
}

/**
 * The events of a mesh, with their payloads. The names are the same in embedded and
 * control-plane mode.
 *
 * - `config`: a config is in use — at start (emitted on the next turn, so a listener added
 *   right after `await createMesh(...)` sees it), after each applied change, and (control-plane
 *   mode) when endpoints changed. Carries the version, where it came from, and its findings.
 * - `rejected`: a change was refused (schema errors, or findings under `analysis: 'blocking'`).
 * - `watch`: a watched config directory was lost (deleted, moved away) or is watched again
 *   (embedded mode only).
 * - `connected` / `disconnected`: the control-plane watch stream came up / went down
 *   (control-plane mode only).
 * - `ejected` / `returned`: outlier detection ejected an endpoint / let it back in.
 * @category Mesh
 */
export interface MeshEvents {
  config: [ConfigAppliedEvent];
  rejected: [RejectedEvent];
  watch: [WatchStateEvent];
  connected: [ConnectedEvent];
  disconnected: [DisconnectedEvent];
  ejected: [OutboundEvent];
  returned: [OutboundEvent];
}
