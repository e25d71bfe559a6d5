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

export const differences: Readonly<Record<string, Difference>> = {
};
