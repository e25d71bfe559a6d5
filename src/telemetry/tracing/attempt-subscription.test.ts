import assert from 'node:assert/strict';
import { hasSubscribers } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { AttemptSubscription, IDLE_CALLS } from './attempt-subscription.ts';

describe('AttemptSubscription', () => {
  const name = 'meshlet:test:attempt-subscription';
  const make = () => new AttemptSubscription([[name, () => {}]]);

  it('not subscribed until a recorded call starts; unrecorded calls alone never subscribe', () => {
    const a = make();
    for (let i = 0; i < 3 * IDLE_CALLS; i++) a.ended(false);
    assert.equal(hasSubscribers(name), false);
    a.recordedStart();
    assert.equal(hasSubscribers(name), true);
    a.close();
    assert.equal(hasSubscribers(name), false);
  });

  it(`let go after ${IDLE_CALLS} unrecorded calls end with no recorded one in flight, not before`, () => {
    const a = make();
    a.recordedStart();
    a.recordedStart();
    a.ended(true);
    // One recorded call still in flight: its attempts must still be seen, however many others end.
    for (let i = 0; i < 3 * IDLE_CALLS; i++) a.ended(false);
    assert.equal(hasSubscribers(name), true);
    a.ended(true);
    for (let i = 0; i < IDLE_CALLS - 1; i++) a.ended(false);
    assert.equal(hasSubscribers(name), true, 'a run of sampled calls with a few unsampled ones between does not churn');
    a.recordedStart();
    a.ended(true);
    for (let i = 0; i < IDLE_CALLS - 1; i++) a.ended(false);
    assert.equal(hasSubscribers(name), true, 'a recorded call restarts the count');
    a.ended(false);
    assert.equal(hasSubscribers(name), false);
    a.recordedStart();
    assert.equal(hasSubscribers(name), true, 'and back on for the next recorded call');
    a.close();
  });
});
