/**
 * The deliberate differences between meshlet and Istio: every case of the conformance suite where
 * meshlet's verdict differs from Istio's, with the reason. The suite fails when a disagreement is
 * missing here, and when an entry here is no longer a disagreement (so the list cannot rot).
 * Keys are case ids: `category/table/case`.
 */

/** Why meshlet deliberately differs from Istio on a case. */
export interface Difference {
  readonly reason: string;
}

const NULL_MATCH =
  'The Go row holds a nil match block, which YAML can only write as `match: [null]`. The Kubernetes API server refuses that ' +
  '(Istio\'s CRD schema: "match[0] in body must be of type object: null"; Istio\'s own CRD test skips such cases because its ' +
  'webhook cannot see them), so meshlet refuses it too, with the path of the null item, instead of reading it as a catch-all.';

export const differences: Readonly<Record<string, Difference>> = {
  'validation/TestValidateHTTPStatus/600': {
    reason:
      'Istio\'s webhook lets status 600 through (validateHTTPStatus checks > 600, although its message says 200-599), but Envoy ' +
      'refuses it (the fault filter\'s abort http_status and the direct response status must be < 600), so the listener would be ' +
      'rejected at run time. meshlet refuses 600 when the config is loaded.',
  },
  'validation/TestValidateHTTPRoute/match with nil element': { reason: NULL_MATCH },
  'validation/TestValidateHTTPRoute/valid mirror percentage': { reason: NULL_MATCH },
  'validation/TestValidateHTTPRoute/mirrors valid mirror percentage': { reason: NULL_MATCH },
  'validation/TestValidateDelegateHTTPRoute/match with nil element': { reason: NULL_MATCH },
  'validation/TestValidateDelegateHTTPRoute/valid mirror percentage': { reason: NULL_MATCH },

  'analysis/dupmatches/VirtualService default/uri-with-prefix-exact': {
    reason:
      'The rule\'s first match block is `uri: {prefix: "/"}`, which matches every request, so its second block (`uri: {exact: "/"}, method: GET`) ' +
      "is never used; meshlet reports that (IST0131, info). Istio's overlap check (genMatchHTTPRoutes/coveredValidation) compares prefix matches " +
      'with prefix matches only, so an exact URI after a prefix is never compared and Istio says nothing.',
  },
  'analysis/dupmatches/VirtualService default/overlapping-in-two-matches': {
    reason:
      'Rule 1 (`prefix /api/v1/products`, GET) can never match: rule 0 (`prefix /api/v1/product`, GET) takes every request it would. Both report its ' +
      'match block as ineffective (IST0131); meshlet also reports the rule as unreachable (IST0130, warning), which Istio does only when every block ' +
      'is an exact duplicate of an earlier one, not when earlier blocks cover it.',
  },
};
