/**
 * The `meshlet` command line.
 *
 * @module
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isMeshletError } from '../core/errors.ts';
import { out, UsageError } from './args.ts';
import { applyCommand, applyHelp } from './commands/apply.ts';
import { controlPlaneCommand, controlPlaneHelp } from './commands/control-plane.ts';
import { deleteCommand, deleteHelp } from './commands/delete.ts';
import { getCommand, getHelp } from './commands/get.ts';
import { routesCommand, routesHelp } from './commands/routes.ts';
import { statusCommand, statusHelp } from './commands/status.ts';
import { tokenCommand, tokenHelp } from './commands/token.ts';
import { validateCommand, validateHelp } from './commands/validate.ts';

const HELP = `meshlet — an in-process service mesh for Node.js that reads Istio's own resources.

Usage: meshlet <command> [options]

Commands:
  validate <files or dirs...>             validate and analyse Istio resources
  routes <config> --service <name> ...    print the compiled route table of a workload
  control-plane --config <dir> [...]      run the control-plane server (config push, registry)
  token (--service <s> -n <ns> | --admin) mint a token signed with the control plane's key
  apply -f <file|dir>                     create or replace resources on the control plane
  get <kind> [name] [-n ns] [-o yaml]     list or print resources the control plane serves
  delete <kind> <name> [-n ns]            delete a resource created with apply
  status                                  connected workloads, ACKed versions, refused changes
  help [command]                          show help

Run 'meshlet <command> --help' for a command's options.
`;

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; help: string }> = {
  validate: { run: validateCommand, help: validateHelp },
  analyze: { run: validateCommand, help: validateHelp },
  routes: { run: routesCommand, help: routesHelp },
  'control-plane': { run: controlPlaneCommand, help: controlPlaneHelp },
  token: { run: tokenCommand, help: tokenHelp },
  apply: { run: applyCommand, help: applyHelp },
  get: { run: getCommand, help: getHelp },
  delete: { run: deleteCommand, help: deleteHelp },
  status: { run: statusCommand, help: statusHelp },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const sub = rest[0] === undefined ? undefined : COMMANDS[rest[0]];
    out(sub?.help ?? HELP);
    return 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    out(version());
    return 0;
  }
  const command = COMMANDS[cmd];
  if (command === undefined) throw new UsageError(`unknown command "${cmd}"; run 'meshlet help'`);
  return command.run(rest);
}

/**
 * Runs the CLI for this process (`argv` without node and script) and sets `process.exitCode`:
 * 0 ok, 1 failed or errors found, 2 usage, 70 internal error.
 */
export function run(argv: string[]): Promise<void> {
  return main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof UsageError || (err instanceof Error && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
        process.stderr.write(`meshlet: ${err.message}\n`);
        process.exitCode = 2;
      } else if (isMeshletError(err)) {
        process.stderr.write(`meshlet: ${err.message}\n`);
        process.exitCode = 1;
      } else {
        process.stderr.write(`meshlet: internal error (please report): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exitCode = 70;
      }
    },
  );
}

/**
 * True when this file is the script node was started with (`node src/cli/main.ts`). The
 * installed command is `bin.ts`; through `node_modules/.bin/meshlet` argv[1] is a symlink, so
 * both sides are compared as real paths.
 */
function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntry()) void run(process.argv.slice(2));
