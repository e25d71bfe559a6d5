/**
 * The `meshlet` command line.
 *
 * @module
 */
import { realpathSync } from 'node:fs';
import { enableCompileCache } from 'node:module';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, isMeshletError } from '../core/errors.ts';
import { MESHLET_VERSION } from '../core/version.ts';
import { out, UsageError } from './args.ts';
import { exitQuietlyOnBrokenPipe } from './pipe.ts';

const HELP = `meshlet — an in-process service mesh for Node.js that reads Istio's own resources.

Usage: meshlet <command> [options]

Commands:
  validate <files, dirs or ->              validate and analyse Istio resources
  routes <config> --service <name> ...     print the compiled route table of a workload
  explain <config> --service <name> <url>  explain how one request would be handled (sends nothing;
                                           --inbound: one the workload receives)
  control-plane --config <dir> [...]       run the control-plane server (config push, registry)
  token --service <s> | --admin | --viewer mint a token signed with the control plane's key
  apply -f <file, dir or ->                create or replace resources on the control plane
  get <kind>[,<kind>...]|all [name]        list or print resources the control plane serves
  delete <kind> <name> [-n ns]             delete a resource created with apply
  status                                   connected workloads, ACKed versions, refused changes
  proxy-config <what> <admin-url>          clusters, endpoints (health, outlier check), routes or the
                                           certificate of a running mesh, from its admin endpoint
  stat <metrics-url> [--interval 10s]      golden metrics (success rate, RPS, latency) from a
                                           Prometheus endpoint, as 'linkerd viz stat'
  tap <admin-url-or-port> [filters]        a running mesh's requests as they happen, in and out,
                                           as 'linkerd viz tap'
  top <admin-url-or-port> [--once]         its busiest paths live: count, success rate, latency
  ca <init|show|issue|rotate> <dir>        a development CA: workload certificates for tests
  help [command]                           show help

Every command but control-plane takes -o json|yaml for machine output (tap: -o json, one
record a line; docs/cli.md).
Exit codes: 0 ok, 1 errors found or the command failed, 2 usage mistake,
141 stdout closed early (e.g. piped into head), 70 internal error.

Run 'meshlet <command> --help' for a command's options.
`;

/** A command: runs with its arguments and resolves the exit code; `help` is its usage text. */
interface Command {
  run(argv: string[]): Promise<number>;
  readonly help: string;
}

// Each command is loaded when it runs: `meshlet validate` does not load the mesh, undici or the
// control-plane server (a quicker start, and the pipe into `head` closes sooner).
const COMMANDS: Record<string, () => Promise<Command>> = {
  validate: async () => {
    const m = await import('./commands/validate.ts');
    return { run: m.validateCommand, help: m.validateHelp };
  },
  routes: async () => {
    const m = await import('./commands/routes.ts');
    return { run: m.routesCommand, help: m.routesHelp };
  },
  explain: async () => {
    const m = await import('./commands/explain.ts');
    return { run: m.explainCommand, help: m.explainHelp };
  },
  'control-plane': async () => {
    const m = await import('./commands/control-plane.ts');
    return { run: m.controlPlaneCommand, help: m.controlPlaneHelp };
  },
  token: async () => {
    const m = await import('./commands/token.ts');
    return { run: m.tokenCommand, help: m.tokenHelp };
  },
  apply: async () => {
    const m = await import('./commands/apply.ts');
    return { run: m.applyCommand, help: m.applyHelp };
  },
  get: async () => {
    const m = await import('./commands/get.ts');
    return { run: m.getCommand, help: m.getHelp };
  },
  delete: async () => {
    const m = await import('./commands/delete.ts');
    return { run: m.deleteCommand, help: m.deleteHelp };
  },
  status: async () => {
    const m = await import('./commands/status.ts');
    return { run: m.statusCommand, help: m.statusHelp };
  },
  'proxy-config': async () => {
    const m = await import('./commands/proxy-config.ts');
    return { run: m.proxyConfigCommand, help: m.proxyConfigHelp };
  },
  stat: async () => {
    const m = await import('./commands/stat.ts');
    return { run: m.statCommand, help: m.statHelp };
  },
  tap: async () => {
    const m = await import('./commands/tap.ts');
    return { run: m.tapCommand, help: m.tapHelp };
  },
  top: async () => {
    const m = await import('./commands/top.ts');
    return { run: m.topCommand, help: m.topHelp };
  },
  ca: async () => {
    const m = await import('./commands/ca.ts');
    return { run: m.caCommand, help: m.caHelp };
  },
};
COMMANDS.analyze = COMMANDS.validate!;


function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

function isParseArgsError(err: unknown): err is Error {
  return err instanceof Error && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
}

/**
 * What node:util's parseArgs refused (an unknown option, a missing value), as a usage error in
 * meshlet's words, for every command alike: an unknown option with the command's closest one
 * (from its help), and the command's usage line.
 */
async function parseArgsMistake(cmd: string, help: string, err: Error): Promise<UsageError> {
  let message = err.message;
  const unknown = /^Unknown option '(-[^']*)'/.exec(err.message)?.[1];
  if (unknown !== undefined) {
    const { editDistance } = await import('../core/did-you-mean.ts');
    const known = new Set(help.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []);
    let best: string | undefined;
    let bestDistance = 3;
    for (const k of known) {
      const d = editDistance(unknown, k);
      if (d < bestDistance) [best, bestDistance] = [k, d];
    }
    message = `unknown option ${unknown}${best === undefined ? '' : ` (did you mean ${best}?)`}`;
  }
  const usage = /^Usage: .*$/m.exec(help)?.[0] ?? `Usage: meshlet ${cmd} [options]`;
  return new UsageError(`${message}\n${usage}\nRun 'meshlet ${cmd} --help' for its options.`, { cause: err });
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  exitQuietlyOnBrokenPipe();
  // The command modules load below, after this: Node keeps their compiled code in its on-disk
  // cache (os.tmpdir()/node-compile-cache, as tsc does; NODE_DISABLE_COMPILE_CACHE=1 turns it
  // off), so a second run starts in about half the time.
  try {
    enableCompileCache();
  } catch {
    // An unwritable cache directory only costs speed.
  }
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    // `meshlet help help`, `meshlet help --help`: the general help, as for `meshlet help`.
    const topic = rest[0] === 'help' || rest[0] === '--help' || rest[0] === '-h' ? undefined : rest[0];
    const load = topic === undefined || !Object.hasOwn(COMMANDS, topic) ? undefined : COMMANDS[topic];
    if (topic !== undefined && load === undefined) throw new UsageError(`unknown command "${topic}"; run 'meshlet help'`);
    out(load === undefined ? HELP : (await load()).help);
    return 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    out(MESHLET_VERSION);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (load === undefined) throw new UsageError(`unknown command "${cmd}"; run 'meshlet help'`);
  const command = await load();
  try {
    return await command.run(rest);
  } catch (err) {
    if (isParseArgsError(err)) throw await parseArgsMistake(cmd, command.help, err);
    // A file or socket the system refused (--data-dir is a file, a port in use, …) is a failure
    // of what was asked (exit 1, its message naming the path), not a bug in meshlet.
    if (isSystemError(err)) throw new InvalidArgumentError(`${cmd}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** `meshlet: <message>`, unless the message already names meshlet (`meshlet get: unknown kind …`). */
export function prefixed(message: string): string {
  return /^meshlet[ :]/.test(message) ? message : `meshlet: ${message}`;
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
        process.stderr.write(`${prefixed(err.message)}\n`);
        process.exitCode = 2;
      } else if (isMeshletError(err)) {
        process.stderr.write(`${prefixed(err.message)}\n`);
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
