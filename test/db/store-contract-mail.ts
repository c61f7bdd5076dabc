import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Database, EmailTokenPurpose, UserRecord } from '../../src/db/database.js';
import { UniqueConstraintError } from '../../src/db/errors.js';
import type { NewEmailToken } from '../../src/db/stores/email-tokens.js';
import { LeaseLostError } from '../../src/db/stores/mail-outbox.js';
import type { ManualClock } from '../support/app.js';

const MINUTE = 60_000;

/**
 * The mail stores' part of the store contract (store-contract.ts): mailed tokens and the outbox, on every
 * engine. `fixture` is read when a test runs (the database is opened in the contract's beforeAll).
 */
export function mailStoreContract(fixture: () => { db: Database; clock: ManualClock }, newUser: () => Promise<UserRecord>): void {
  const token = (userId: string | null, purpose: EmailTokenPurpose, emailKey = `${randomUUID()}@example.test`): NewEmailToken => {
    const { clock } = fixture();
    return {
      id: randomUUID(),
      purpose,
      userId,
      email: emailKey,
      emailKey,
      secretHash: randomUUID(),
      codeHash: null,
      boundCredentialsVersion: null,
      boundEmailKey: null,
      createdAt: new Date(clock.now()),
      expiresAt: new Date(clock.now() + 10 * MINUTE),
    };
  };

  describe('mailed tokens', () => {
    it('keep only the newest of a purpose per account (or per address without one); other purposes stay', async () => {
      const { db } = fixture();
      const user = await newUser();
      const first = token(user.id, 'reset_password');
      const other = token(user.id, 'verify_email');
      const second = token(user.id, 'reset_password');
      for (const t of [first, other, second]) await db.transaction((tx) => db.emailTokens.issue(tx, t));
      expect(await db.emailTokens.find(first.id)).toBeNull();
      expect(await db.emailTokens.find(other.id)).not.toBeNull();
      expect((await db.emailTokens.findBySecretHash(second.secretHash))?.id).toBe(second.id);

      const anonymousFirst = token(null, 'sign_in', 'nobody@example.test');
      const anonymousSecond = token(null, 'sign_in', 'nobody@example.test');
      await db.transaction((tx) => db.emailTokens.issue(tx, anonymousFirst));
      await db.transaction((tx) => db.emailTokens.issue(tx, anonymousSecond));
      expect(await db.emailTokens.find(anonymousFirst.id)).toBeNull();
      expect((await db.emailTokens.findNewestFor('sign_in', 'nobody@example.test'))?.id).toBe(anonymousSecond.id);
    });

    it('are used up once, not after they expired, and not when the transaction rolls back', async () => {
      const { db, clock } = fixture();
      const user = await newUser();
      const t = token(user.id, 'verify_email');
      await db.transaction((tx) => db.emailTokens.issue(tx, t));
      await expect(
        db.transaction(async (tx) => {
          expect(await db.emailTokens.consume(tx, t.id)).toBe(true);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await db.transaction((tx) => db.emailTokens.consume(tx, t.id))).toBe(true);
      expect(await db.transaction((tx) => db.emailTokens.consume(tx, t.id))).toBe(false);

      const late = token(user.id, 'reset_password');
      await db.transaction((tx) => db.emailTokens.issue(tx, late));
      clock.advance(10 * MINUTE);
      expect(await db.transaction((tx) => db.emailTokens.consume(tx, late.id))).toBe(false);
      expect(await db.emailTokens.purgeExpired()).toBeGreaterThanOrEqual(1);
      expect(await db.emailTokens.find(late.id)).toBeNull();
    });

    it('count tries atomically: of 8 parallel tries against a limit of 5, exactly 5 are let through', async () => {
      const { db } = fixture();
      const t = token((await newUser()).id, 'sign_in');
      await db.transaction((tx) => db.emailTokens.issue(tx, t));
      const tries = await Promise.all(Array.from({ length: 8 }, () => db.emailTokens.chargeTry(t.id, 5)));
      expect(tries.filter(Boolean)).toHaveLength(5);
      expect((await db.emailTokens.find(t.id))?.failedAttempts).toBe(5);
    });
  });

  describe('addresses', () => {
    it('verify an address only while it is the current one, and change it only from the expected one', async () => {
      const { db, clock } = fixture();
      const user = await newUser();
      const other = await newUser();
      const now = new Date(clock.now());
      const change = (email: string) => ({ email, emailKey: email.toLowerCase(), verifiedAt: now });
      expect(
        await db.transaction((tx) => db.users.changeEmailIfCurrent(tx, user.id, { emailKey: null, credentialsVersion: 0 }, change(`${user.id}@Example.test`))),
      ).toBe(true);
      expect(
        await db.transaction((tx) => db.users.changeEmailIfCurrent(tx, user.id, { emailKey: null, credentialsVersion: 0 }, change(`x${user.id}@example.test`))),
      ).toBe(false);
      expect(await db.transaction((tx) => db.users.markEmailVerified(tx, user.id, 'someone-else@example.test', now))).toBe(false);
      expect(await db.transaction((tx) => db.users.markEmailVerified(tx, user.id, `${user.id}@example.test`, now))).toBe(true);
      expect((await db.users.find(user.id))?.emailVerifiedAt?.getTime()).toBe(now.getTime());
      // Taken by another account: the unique index decides, as for registration.
      await expect(
        db.transaction((tx) => db.users.changeEmailIfCurrent(tx, other.id, { emailKey: null, credentialsVersion: 0 }, change(`${user.id}@example.test`))),
      ).rejects.toBeInstanceOf(UniqueConstraintError);
    });
  });

  describe('mail outbox', () => {
    it('lets exactly one of two racing senders claim a due row, and hands it over when the lease ran out', async () => {
      const { db, clock } = fixture();
      await db.mailOutbox.addRequest({ id: randomUUID(), kind: 'reset_password', recipient: 'a@example.test' });
      const [a, b] = await Promise.all([db.mailOutbox.claimDue(100, 60_000), db.mailOutbox.claimDue(100, 60_000)]);
      const ids = [...a, ...b].map((row) => row.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(await db.mailOutbox.claimDue(100, 60_000)).toEqual([]);
      clock.advance(60_001);
      const retaken = await db.mailOutbox.claimDue(100, 60_000);
      expect(retaken.map((row) => row.id).sort()).toEqual(ids.sort());
      // The first sender, stalled past its lease, can no longer write the row; the one that took it over can.
      const stale = [...a, ...b].find((row) => row.id === retaken[0]!.id)!;
      expect(await db.mailOutbox.finish(stale, 'sent')).toBe(false);
      expect(await db.mailOutbox.retryLater(stale, 1, new Date(clock.now()), 'late')).toBe(false);
      await expect(
        db.transaction((tx) => db.mailOutbox.resolve(tx, stale, { recipient: 'a@example.test', userId: randomUUID(), tokenId: null })),
      ).rejects.toBeInstanceOf(LeaseLostError);
      for (const row of retaken) expect(await db.mailOutbox.finish(row, 'sent')).toBe(true);
    });

    it('keeps a failed attempt until it is due again, and never hands out a finished row', async () => {
      const { db, clock } = fixture();
      const id = randomUUID();
      await db.mailOutbox.addRequest({ id, kind: 'sign_in', recipient: 'b@example.test' });
      const [claimed] = await db.mailOutbox.claimDue(100, 60_000);
      expect(claimed?.id).toBe(id);
      expect(await db.mailOutbox.retryLater(claimed!, 1, new Date(clock.now() + 5_000), 'connection refused')).toBe(true);
      expect(await db.mailOutbox.claimDue(100, 60_000)).toEqual([]);
      expect(await db.mailOutbox.countWaiting()).toBe(1);
      clock.advance(5_000);
      const again = await db.mailOutbox.claimDue(100, 60_000);
      expect(again.map((row) => [row.id, row.attempts, row.lastError])).toEqual([[id, 1, 'connection refused']]);
      expect(await db.mailOutbox.finish(again[0]!, 'failed', 'gave up')).toBe(true);
      clock.advance(120_000);
      expect(await db.mailOutbox.claimDue(100, 60_000)).toEqual([]);
      expect(await db.mailOutbox.countWaiting()).toBe(0);
      expect(await db.mailOutbox.purgeFinished(new Date(clock.now() + 1))).toBeGreaterThanOrEqual(1);
    });
  });
}
