import { verify } from '@node-rs/argon2';
import { type CpuPerRequest, perRequest, threadCpuMs } from './cpu.js';

// Raw @node-rs/argon2 verify throughput, closed loop at a fixed concurrency: the ceiling for `login`.
// Runs in its own process, started like the server (same Node flags, same environment, so the same
// libuv thread pool size). Input: one JSON argument; output: one JSON line on stdout.

interface Input {
  hash: string;
  password: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  rounds: number;
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

if (input.warmupMs > 0) await round(input.warmupMs);
const rounds: Round[] = [];
for (let i = 0; i < input.rounds; i++) rounds.push(await round(input.durationMs));
process.stdout.write(`${JSON.stringify({ rounds, rssMB: process.memoryUsage().rss / 2 ** 20 })}\n`);
