import { readFileSync } from 'node:fs';

/**
 * Whether a process is running. Signal 0 checks without sending anything (EPERM: it runs, as
 * someone else's); a zombie — killed, not yet reaped by its parent — answers signal 0 too, so on
 * Linux its state in /proc decides (elsewhere, signal 0 alone).
 */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // The state is the field after the command name, which is in parentheses and may hold spaces.
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}
