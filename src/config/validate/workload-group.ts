/**
 * Validation of `WorkloadGroupSpec`, following Istio's `ValidateWorkloadGroup` (a template is
 * required; metadata labels are valid labels; the readiness probe has exactly one supported
 * method with valid ports, scheme and header names) and the WorkloadGroup CRD's rules for the
 * template (port names and numbers, unix-socket addresses without ports, length limits).
 * The template is not validated as a full WorkloadEntry: its address comes from the workload
 * that registers.
 *
 * @module
 */
import type { ReadinessProbe, WorkloadEntrySpec, WorkloadGroupSpec } from '../types/networking.ts';
import { labels } from './common.ts';
import { checkLocality, checkUnixAddress, INT32_MAX, UINT32_MAX, UNIX_PREFIX } from './shared-networking.ts';
import { fail, int, list, map, nonEmpty, obj, port, req, str, strWith, type Validator } from './schema.ts';

const PORT_NAME = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** The CRD's rule for template port names: `^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$`, shorter than 63. */
function checkTemplatePortName(name: string): string | undefined {
  return name.length < 63 && PORT_NAME.test(name) ? undefined : `port name "${name}" must be valid: letters, digits and "-", starting and ending with a letter or digit, shorter than 63 characters`;
}

const maxLength = (n: number) => strWith((s) => (s.length > n ? `must be at most ${n} characters` : undefined));

const template: Validator<WorkloadEntrySpec> = obj<WorkloadEntrySpec>(
  {
    address: strWith((s) => (s.length > 256 ? 'must be at most 256 characters' : s.startsWith(UNIX_PREFIX) ? checkUnixAddress(s) : undefined)),
    ports: map(port, { key: checkTemplatePortName, max: 128 }),
    labels: (v, path, ctx) => (typeof v === 'object' && v !== null && Object.keys(v).length > 256 ? fail(ctx, path, 'must have at most 256 labels') : labels(v, path, ctx)),
    network: maxLength(2048),
    locality: strWith((s) => (s.length > 2048 ? 'must be at most 2048 characters' : s === '' ? undefined : checkLocality(s))),
    weight: int({ min: 0, max: UINT32_MAX }),
    serviceAccount: maxLength(253),
  },
  {
    check: (t, path, ctx) => {
      if (t.address?.startsWith(UNIX_PREFIX) === true && t.ports !== undefined) fail(ctx, [...path, 'ports'], 'must be unset for a unix:// address (UDS may not include ports)');
    },
  },
);

const nonNegative = int({ min: 0, max: INT32_MAX });
const HEADER_NAME = /^[-A-Za-z0-9]+$/;

const probe: Validator<ReadinessProbe> = obj<ReadinessProbe>(
  {
    initialDelaySeconds: nonNegative,
    timeoutSeconds: nonNegative,
    periodSeconds: nonNegative,
    successThreshold: nonNegative,
    failureThreshold: nonNegative,
    httpGet: obj({
      path: str,
      port: req(port),
      host: str,
      scheme: strWith((s) => (s === '' || s === 'HTTP' || s === 'HTTPS' ? undefined : `must be one of "HTTPS", "HTTP", got "${s}"`)),
      httpHeaders: list(
        obj({
          name: req(strWith((n) => (HEADER_NAME.test(n) ? undefined : `header name "${n}" is not a valid header name (letters, digits and "-")`))),
          value: str,
        }),
      ),
    }),
    tcpSocket: obj({ host: str, port: req(port) }),
    exec: obj({ command: req(list(nonEmpty, { min: 1 })) }),
    grpc: obj({ port, service: str }),
  },
  {
    check: (_p, path, ctx, raw) => {
      const methods = (['httpGet', 'tcpSocket', 'exec', 'grpc'] as const).filter((m) => raw[m] !== undefined && raw[m] !== null);
      if (methods.length === 0) fail(ctx, path, 'one of httpGet, tcpSocket or exec is required');
      else if (methods.length > 1) fail(ctx, path, `only one of httpGet, tcpSocket, exec may be set, got ${methods.join(' and ')}`);
      else if (methods[0] === 'grpc') fail(ctx, [...path, 'grpc'], "is not accepted by Istio's validation (unknown health check method); use httpGet, tcpSocket or exec");
    },
  },
);

/** Validates a WorkloadGroup spec. */
export const workloadGroupSpec: Validator<WorkloadGroupSpec> = obj<WorkloadGroupSpec>({
  metadata: obj({
    labels: (v, path, ctx) => (typeof v === 'object' && v !== null && Object.keys(v).length > 256 ? fail(ctx, path, 'must have at most 256 labels') : labels(v, path, ctx)),
    annotations: map(str, { max: 256 }),
  }),
  template: req(template),
  // Run by the registering mesh (mesh.register), as pilot-agent runs it on a VM.
  probe,
});
