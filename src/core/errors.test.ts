import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, InvalidArgumentError, MeshletError } from './errors.ts';

test('instanceof: the base class matches any branded error, a subclass only its own instances', () => {
  const config = new ConfigError([]);
  const arg = new InvalidArgumentError('bad');
  assert.ok(config instanceof MeshletError);
  assert.ok(arg instanceof MeshletError);
  assert.ok(config instanceof ConfigError);
  assert.equal(arg instanceof ConfigError, false, 'an InvalidArgumentError is not a ConfigError');
  assert.equal(config instanceof InvalidArgumentError, false);
  // an error from another copy of meshlet carries the brand but not this copy's prototype
  const foreign = Object.assign(new Error('x'), { [Symbol.for('meshlet.error')]: true });
  assert.ok(foreign instanceof MeshletError);
  assert.equal(foreign instanceof ConfigError, false);
  assert.equal({} instanceof MeshletError, false);
});
