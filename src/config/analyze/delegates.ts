/**
 * Root VirtualService rules whose delegate cannot be merged (`MESHLET0102`). Istio logs
 * "delegate virtual service … not found" (or "not exported to") and leaves the rule out of the
 * routes; meshlet does the same when compiling and reports it here, so the dropped rule is not
 * a surprise. Istio's analyzers have no code for it.
 *
 * @module
 */
import { mergeDelegates } from '../delegation.ts';
import type { Analyzer } from './context.ts';

/** `MESHLET0102`: a root rule names a delegate that is missing, has hosts, or is not exported to the root's namespace. */
export const delegateAnalyzer: Analyzer = {
  name: 'virtualservice.delegates',
  codes: ['MESHLET0102'],
  description: 'root VirtualService rules whose delegate VirtualService is missing or not visible',
  *analyze(ctx, issues) {
    for (const p of mergeDelegates(ctx.virtualServices).problems) {
      yield;
      const why = p.reason === 'not-found'
        ? `no delegate VirtualService ${p.delegate} (a VirtualService without hosts)`
        : `the delegate VirtualService ${p.delegate} is not exported to namespace ${p.root.metadata.namespace}`;
      issues.at(p.root, ['spec', 'http', p.rule, 'delegate'], 'warning', `${why}: this rule is left out of the routes, as Istio does`, 'MESHLET0102');
    }
  },
};
