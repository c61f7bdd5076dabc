import { createInterface } from 'node:readline';
import { verify } from '@node-rs/argon2';
import { type CpuPerRequest, perRequest, threadCpuMs } from './cpu.js';

// Raw @node-rs/argon2 verify throughput, closed loop at a fixed concurrency: the ceiling for `login`.
// Runs in its own process, started like the server (same Node flags, same environment, so the same
// libuv thread pool size), and stays up so that its rounds can alternate with the login rounds.
// Input: one JSON argument (hash, password, concurrency); then each stdin line is a round's length in
// ms, answered by one JSON line on stdout.

interface Input {
  hash: string;
  password: string;
  concurrency: number;
}

interface Round {
  rps: number;
  p50: number;
  p99: number;
  count: number;
  errors: number;
  cpu: CpuPerRequest | null;
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function round(durationMs: number): Promise<Round> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  let finishedAt = started;
  const cpuBefore = threadCpuMs(process.pid);
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const ok = await verify(input.hash, input.password).catch(() => false);
      const t1 = performance.now();
      if (!ok) errors++;
      // Like autocannon: only what completes inside the window counts.
      if (t1 <= deadline) {
        latencies.push(t1 - t0);
        finishedAt = t1;
      }
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, worker));
  latencies.sort((a, b) => a - b);
  const seconds = Math.max(durationMs, finishedAt - started) / 1000;
  const cpu = perRequest(cpuBefore, threadCpuMs(process.pid), latencies.length);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), count: latencies.length, errors, cpu };
}

for await (const line of createInterface({ input: process.stdin })) {
  const result: Round & { rssMB?: number } = await round(Number(line));
  result.rssMB = process.memoryUsage().rss / 2 ** 20;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
