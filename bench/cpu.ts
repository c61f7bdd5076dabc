import { readdirSync, readFileSync } from 'node:fs';

export interface CpuPerRequest {
  mainMs: number;
  otherMs: number;
  /** PostgreSQL runs: the CPU of the database server's backends serving the benchmark's database. */
  databaseMs?: number;
}

/** CPU time used so far by a whole process (all threads), in ms (Linux /proc; null elsewhere or when gone). */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / 100);
  } catch {
    return null;
  }
}

/**
 * CPU time used so far by a process, split into its main thread (the event loop) and the rest (libuv's
 * pool, where argon2 runs, and V8's helpers), in ms (Linux /proc; null elsewhere).
 */
export function threadCpuMs(pid: number | undefined): CpuPerRequest | null {
  if (pid === undefined) return null;
  try {
    const tick = 1000 / 100; // USER_HZ is 100 on Linux
    let mainMs = 0;
    let otherMs = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(fields[11]) + Number(fields[12])) * tick; // utime, stime
      if (tid === String(pid)) mainMs += ms;
      else otherMs += ms;
    }
    return { mainMs, otherMs };
  } catch {
    return null;
  }
}

export function perRequest(before: CpuPerRequest | null, after: CpuPerRequest | null, requests: number): CpuPerRequest | null {
  if (!before || !after || requests === 0) return null;
  return { mainMs: (after.mainMs - before.mainMs) / requests, otherMs: (after.otherMs - before.otherMs) / requests };
}
