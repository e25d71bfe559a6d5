/**
 * The small logger the control-plane server writes to: warnings always, infos when given.
 *
 * @module
 */

/** Where the control-plane server logs. */
export interface ServerLogger {
  warn(message: string): void;
  info?(message: string): void;
}

/** Logs to stderr with a `meshlet control-plane:` prefix. */
export const stderrLogger: ServerLogger = {
  warn: (m) => process.stderr.write(`meshlet control-plane: warning: ${m}\n`),
  info: (m) => process.stderr.write(`meshlet control-plane: ${m}\n`),
};
