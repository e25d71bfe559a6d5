/**
 * The watch's side of the control plane's MeshConfig on a stream: a `mesh-config` event handed
 * to the listener when well-formed (it is not ACKed: it is not config), and whether the state in
 * use must be compiled again for it. A newer control plane sends it first, after `hello`; a
 * stream whose first other event (or comment) comes without it is an older control plane's,
 * which has none: what an earlier one pushed is taken back (`NO_MESH_CONFIG`), as a newer
 * one without `--mesh-config` takes it back by pushing `{}`.
 *
 * @module
 */
import type { MeshConfigEvent } from './protocol.ts';
import { NO_MESH_CONFIG, parseMeshConfigEvent } from './pushed-events.ts';
import type { SseEvent } from './sse.ts';

/** Takes the control plane's MeshConfig: true when the settings compiles read changed. */
export type MeshConfigListener = ((event: MeshConfigEvent, url: string) => boolean) | undefined;

/** A watch's MeshConfig intake (one per watch; `newStream()` at each stream). */
export class MeshConfigIntake {
  readonly #listener: MeshConfigListener;
  readonly #warn: (message: string) => void;
  /** This stream's server sent its MeshConfig, or showed it sends none. */
  #seen = false;
  /** The mesh settings changed since the state in use was compiled: the next flush compiles it again. */
  changed = false;

  constructor(listener: MeshConfigListener, warn: (message: string) => void) {
    this.#listener = listener;
    this.#warn = warn;
  }

  /** A new stream: its server has said nothing yet. */
  newStream(): void {
    this.#seen = false;
  }

  /** True while the stream has neither sent a `mesh-config` nor anything else (then `take(undefined)` says it sends none). */
  get awaited(): boolean {
    return !this.#seen;
  }

  /** A `mesh-config` event, or none (`e` undefined: the stream's server sends none); true when the state in use must be compiled again. */
  take(e: SseEvent | undefined, url: string): boolean {
    this.#seen = true;
    let event: MeshConfigEvent;
    try {
      event = e === undefined ? NO_MESH_CONFIG : parseMeshConfigEvent(e.data);
    } catch (err) {
      this.#warn(`control plane ${url}: ignoring a malformed mesh-config event: ${(err as Error).message}`);
      return false;
    }
    try {
      if (this.#listener?.(event, url) !== true) return false;
    } catch (err) {
      // The listener's own failure, not the event's: said as such, and the stream goes on.
      this.#warn(`control plane ${url}: the MeshConfig version ${event.version} could not be taken: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
    this.changed = true;
    return true;
  }
}
