/**
 * Validation of `PeerAuthenticationSpec`, following Istio's `ValidatePeerAuthentication`:
 * mTLS modes, port-level modes keyed by workload port (only with a selector), and a
 * warning for selector policies in the root namespace, which Istio ignores.
 *
 * @module
 */
import type { MutualTLSMode, PeerAuthenticationSpec } from '../types/security.ts';
import { checkScope, selectorHasLabels } from './policy-scope.ts';
import { DEFAULT_ROOT_NAMESPACE } from '../resource.ts';
import { labelSelector } from './common.ts';
import { fail, map, obj, oneOf, warn, type Validator } from './schema.ts';

const MODES: readonly MutualTLSMode[] = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'];

const mtls = obj<{ mode?: MutualTLSMode }>({ mode: oneOf(MODES) });

function checkPortKey(key: string): string | undefined {
  if (!/^\d+$/.test(key)) return `port "${key}" must be a port number (1-65535)`;
  const n = Number(key);
  return n < 1 || n > 65535 ? `port ${key} must be in range 1..65535` : undefined;
}

/** Validates a PeerAuthenticationSpec. */
export const peerAuthenticationSpec: Validator<PeerAuthenticationSpec> = obj<PeerAuthenticationSpec>(
  {
    selector: labelSelector,
    mtls,
    portLevelMtls: map(mtls, { key: checkPortKey }),
  },
  {
    check: (_spec, path, ctx, raw) => {
      checkScope(raw, path, ctx);
      const withLabels = selectorHasLabels(raw);
      const ports = raw.portLevelMtls;
      if (typeof ports === 'object' && ports !== null && !Array.isArray(ports)) {
        const p = [...path, 'portLevelMtls'];
        if (Object.keys(ports).length === 0) fail(ctx, p, 'portLevelMtls, if set, must have at least one port');
        else if (!withLabels) {
          fail(ctx, p, 'portLevelMtls is only allowed with a selector (Istio: "mesh/namespace peer authentication cannot have port level mTLS")');
        }
      }
      if (withLabels && ctx.namespace === DEFAULT_ROOT_NAMESPACE) {
        warn(
          ctx,
          [...path, 'selector'],
          `a PeerAuthentication with a selector in the root namespace (${DEFAULT_ROOT_NAMESPACE}) is ignored by Istio; put it in the workload's namespace, or drop the selector to make it mesh-wide`,
        );
      }
    },
  },
);
