/**
 * A closed stdout (`meshlet validate dir | head -1`) ends the process quietly, as it ends any
 * Unix tool, instead of an unhandled `EPIPE` error with a stack trace.
 *
 * @module
 */

/**
 * The exit status when stdout or stderr is a pipe whose reader went away (EPIPE): 128 + SIGPIPE,
 * what a shell reports for a writer a closed pipe killed (`yes | head -1` under `pipefail`).
 */
export const BROKEN_PIPE_EXIT = 141;

let pipeGuarded = false;

/**
 * Makes a write to a closed stdout or stderr end the process quietly with
 * {@link BROKEN_PIPE_EXIT} instead of an unhandled `EPIPE` error and a stack trace. Other
 * stream errors are reported on stderr (when it still works) and end the process with 1.
 */
export function exitQuietlyOnBrokenPipe(): void {
  if (pipeGuarded) return;
  pipeGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(BROKEN_PIPE_EXIT);
      if (stream !== process.stderr) process.stderr.write(`meshlet: cannot write output: ${err.message}\n`);
      process.exit(1);
    });
  }
}
