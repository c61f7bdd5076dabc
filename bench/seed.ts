import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { loadOrCreateKeyFile } from '../src/auth/keys.js';
import { PasswordHasher } from '../src/auth/passwords.js';
import { openDatabase } from '../src/db/client.js';
import { applyMigrations } from '../src/db/migrate.js';
import { closePostgres, openPostgres } from '../src/db/postgres.js';

/** argon2id at OWASP's recommendation, the server's default (and the floor under NODE_ENV=production). */
export const OWASP_ARGON2 = { memoryKiB: 19456, timeCost: 2, parallelism: 1 } as const;
export const BENCH_PASSWORD = 'bench-password-correct-horse';

export const usernameOf = (index: number) => `bench_user_${String(index).padStart(6, '0')}`;

interface UserRow {
  id: string;
  username: string;
  usernameKey: string;
  email: string;
  emailKey: string;
  passwordHash: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface SeedResult {
  readonly databaseUrl: string;
  readonly passwordHash: string;
  readonly users: number;
}

/**
 * Migrates a fresh database (SQLite in dataDir, or the empty PostgreSQL database at postgresUrl) and creates
 * the key file in dataDir (as `npm start` would), then inserts `users` accounts that all share one password,
 * hashed once: 10,000 separate argon2 hashes would take minutes.
 */
export async function seedDatabase(dataDir: string, users: number, postgresUrl?: string): Promise<SeedResult> {
  const databaseUrl = postgresUrl ?? `file:${path.join(dataDir, 'gatehouse.db')}`;
  await applyMigrations(databaseUrl);
  // The keys first, as the first `npm start` on the empty database would: a server refuses to create them
  // for a database that already has users (src/services.ts).
  await loadOrCreateKeyFile(path.join(dataDir, 'keys.json'), new Date());
  const passwordHash = await new PasswordHasher({ ...OWASP_ARGON2, concurrency: 1 }).hash(BENCH_PASSWORD);
  // The two generated clients differ in type, not in these calls.
  const postgres = postgresUrl === undefined ? undefined : await openPostgres(postgresUrl, { poolSize: 2, applicationName: 'gatehouse-bench-seed' });
  const sqlite = postgres ? undefined : await openDatabase(databaseUrl);
  const db = {
    createMany: (data: UserRow[]) => (postgres ? postgres.user.createMany({ data }) : sqlite!.user.createMany({ data })),
    count: () => (postgres ? postgres.user.count() : sqlite!.user.count()),
  };
  try {
    const now = new Date();
    const batch = 1000;
    for (let start = 0; start < users; start += batch) {
      const data: UserRow[] = [];
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
      await db.createMany(data);
    }
    const count = await db.count();
    if (count !== users) throw new Error(`seeding inserted ${count} users, expected ${users}`);
  } finally {
    if (postgres) await closePostgres(postgres);
    else await sqlite!.$disconnect();
  }
  return { databaseUrl, passwordHash, users };
}
