/**
 * {@link Mesh.fetch}: WHATWG `fetch` through a mesh's dispatcher (undici's implementation), taking
 * Node's global `Request` and `FormData` too.
 *
 * @module
 */
import { fetch as undiciFetch } from 'undici';
import type { MeshDispatcher } from './adapters/undici/dispatcher.ts';
import { asOwnFormData, asOwnRequest, isForeignFormData, isForeignRequest } from './adapters/undici/foreign-request.ts';
import { meshCause, rejectWithMeshCause } from './core/errors.ts';

/** `fetch(input, init)` through `dispatcher`; a mesh-made failure rejects with its MeshletError as the cause (or itself). */
export function meshFetch(dispatcher: MeshDispatcher, input: string | URL | Request, init?: RequestInit): Promise<Response> {
  // One promise more than undici's own (for the rejection below), not an async function's
  // frame and await: at c=64 every allocation and microtask of a fetch is paid per request.
  let p: Promise<unknown>;
  try {
    // A Request of Node's global fetch (or another undici copy) is rebuilt as one of ours, and
    // so is a body that is Node's global FormData (only an object body is looked at).
    const body = init?.body;
    const options =
      init === undefined
        ? { dispatcher }
        : typeof body === 'object' && isForeignFormData(body)
          ? { ...(init as object), body: asOwnFormData(body), dispatcher }
          : { ...(init as object), dispatcher };
    p = undiciFetch((typeof input === 'string' || !isForeignRequest(input) ? input : asOwnRequest(input, body != null)) as never, options as never);
  } catch (e) {
    return Promise.reject(meshCause(e));
  }
  return p.then(undefined, rejectWithMeshCause) as Promise<Response>;
}
