import { describe, expect, it } from 'vitest';
import type { Database, Transaction } from '../../src/db/database.js';
import type { SqliteClient } from '../../src/db/client.js';

// Checked by tsc (npm test runs `tsc --noEmit` over test/): each @ts-expect-error fails the type check
// if the line below it ever compiles, i.e. if a store method that needs a transaction starts accepting
// the plain database, the Prisma client, or nothing.
function misuses(db: Database, client: SqliteClient, tx: Transaction): void {
  void db.transaction(async () => {
    // @ts-expect-error the plain database is not a transaction
    await db.users.findIn(db, 'id');
    // @ts-expect-error nor is the Prisma client under it
    await db.sessions.revokeAllForUser(client, 'user', 'reason');
    // @ts-expect-error a transaction cannot be left out
    await db.apiTokens.revokeAllForUser('user');
    // @ts-expect-error nor replaced by undefined
    await db.users.bumpCredentialsVersion(undefined, 'user');
    // @ts-expect-error a Prisma transaction client is not one either
    await db.users.setRole({} as Parameters<Parameters<SqliteClient['$transaction']>[0]>[0], 'user', 'ADMIN');
    // What does type-check: the transaction itself.
    await db.users.findIn(tx, 'id');
  });
}

describe('Transaction', () => {
  it('is a type that store methods require (checked by tsc; see the @ts-expect-error lines)', () => {
    expect(typeof misuses).toBe('function');
  });
});
