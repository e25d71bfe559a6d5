#!/usr/bin/env node
/**
 * The installed `meshlet` command (package.json `bin`). It checks the Node.js version before
 * anything else loads (undici fails obscurely on an old Node), then runs the CLI.
 *
 * @module
 */
import { nodeTooOld } from '../core/node-version.ts';

const tooOld = nodeTooOld(process.versions.node);
if (tooOld !== undefined) {
  // The message names meshlet already ("meshlet needs Node.js >= …").
  process.stderr.write(`${tooOld}\n`);
  process.exitCode = 1;
} else {
  const { run } = await import('./main.ts');
  await run(process.argv.slice(2));
}
