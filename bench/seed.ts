import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { loadOrCreateKeyFile } from '../src/auth/keys.js';
import { PasswordHasher } from '../src/auth/passwords.js';
import { openDatabase } from '../src/db/client.js';
import { applyMigrations } from '../src/db/migrate.js';

/** argon2id at OWASP's recommendation, the server's default (and the floor under NODE_ENV=production). */
export const OWASP_ARGON2 = { memoryKiB: 19456, timeCost: 2, parallelism: 1 } as const;
export const BENCH_PASSWORD = 'bench-password-correct-horse';

export const usernameOf = (index: number) => `bench_user_${String(index).padStart(6, '0')}`;

export interface SeedResult {
  readonly databaseUrl: string;
  readonly passwordHash: string;
  readonly users: number;
}

/**
 * Migrates a fresh SQLite database in dataDir and creates its key file (as `npm start` would), then inserts `users` accounts that
 * all share one password, hashed once: 10,000 separate argon2 hashes would take minutes.
 */
export async function seedDatabase(dataDir: string, users: number): Promise<SeedResult> {
  const databaseUrl = `file:${path.join(dataDir, 'gatehouse.db')}`;
  await applyMigrations(databaseUrl);
  // The keys first, as the first `npm start` on the empty database would: a server refuses to create them
  // for a database that already has users (src/services.ts).
  await loadOrCreateKeyFile(path.join(dataDir, 'keys.json'), new Date());
  const passwordHash = await new PasswordHasher({ ...OWASP_ARGON2, concurrency: 1 }).hash(BENCH_PASSWORD);
  const db = await openDatabase(databaseUrl);
  try {
    const now = new Date();
    const batch = 1000;
    for (let start = 0; start < users; start += batch) {
      const data = [];
      for (let i = start; i < Math.min(users, start + batch); i++) {
        const username = usernameOf(i);
        data.push({
          id: randomUUID(),
          username,
          usernameKey: username.toLowerCase(),
          email: `${username}@bench.example`,
          emailKey: `${username}@bench.example`,
          passwordHash,
          createdAt: now,
          updatedAt: now,
        });
      }
      await db.user.createMany({ data });
    }
    const count = await db.user.count();
    if (count !== users) throw new Error(`seeding inserted ${count} users, expected ${users}`);
  } finally {
    await db.$disconnect();
  }
  return { databaseUrl, passwordHash, users };
}
