/** Whether a process is gone, for tests of what kills which process. */
import { readFileSync } from 'node:fs';

/** Whether a process is gone (or a zombie nobody reaps in this container). */
export function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}
