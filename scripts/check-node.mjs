// Runs first in `npm test`, on whatever Node npm found. The tests run on the Node 24 that
// `npm install` brings as a devDependency (`node`, put on PATH by npm scripts); when that was
// not installed (`npm install --ignore-scripts`), the machine's Node runs them and fails with
// obscure errors (`bad option: --test-coverage-exclude`, ERR_UNKNOWN_FILE_EXTENSION). Say why.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `\nmeshlet's tests need Node.js >= 22.19, and this is Node.js ${process.versions.node} (${process.execPath}).\n` +
      'The project brings its own Node 24 as the `node` devDependency, but it is not installed:\n' +
      'node_modules/.bin/node is missing, which happens after `npm install --ignore-scripts`.\n' +
      'Run `npm rebuild node` (or `npm install` without --ignore-scripts), then `npm test` again.\n\n',
  );
  process.exit(1);
}
