import { describe, expect, it } from 'vitest';
import { createTestApp, registerUser } from './support/app.js';
import { OPERATOR } from '../src/auth/admin-actor.js';
import { rawDb } from './support/raw-db.js';

// SQLite runs on one connection: these prove a transaction neither swallows nor rolls back work that
// other requests had acknowledged while it was open, and that the last-admin guard holds under races.

const app = await createTestApp();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('transactions on the shared connection', () => {
  it('keeps a logout acknowledged while another transaction was open and then rolled back', async () => {
    const { sessionId } = await loginSession();
    const [failed, revoked] = await Promise.allSettled([
      rawDb(app.services).$transaction(async (tx) => {
        await tx.user.findMany({ take: 1 });
        await sleep(150);
        throw new Error('rolled back on purpose');
      }),
      (async () => {
        await sleep(30);
        return app.services.sessions.revoke(sessionId, 'logout');
      })(),
    ]);
    expect(failed.status).toBe('rejected');
    expect(revoked).toEqual({ status: 'fulfilled', value: true });
    const row = await rawDb(app.services).session.findUnique({ where: { id: sessionId } });
    expect(row?.revokedAt).not.toBeNull();
  });

  it('keeps every logout acknowledged while refused admin changes roll back', async () => {
    // The only administrator: demoting them is refused, each refusal a rolled-back transaction.
    await rawDb(app.services).user.updateMany({ where: { role: 'ADMIN' }, data: { role: 'USER' } });
    const admin = await app.services.accounts.createUser({ username: `root${Date.now()}`, password: 'root password 1' }, 'ADMIN');
    const sessions = await Promise.all(Array.from({ length: 40 }, () => loginSession()));
    const outcomes = await Promise.allSettled([
      ...sessions.map(({ sessionId }) => app.services.sessions.revoke(sessionId, 'logout')),
      ...Array.from({ length: 10 }, () => app.services.users.setRole(admin.id, 'USER', OPERATOR)),
    ]);
    expect(outcomes.slice(0, 40).map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : outcome.reason))).toEqual(Array(40).fill(true));
    expect(outcomes.slice(40).map((outcome) => outcome.status)).toEqual(Array(10).fill('rejected'));
    const stillActive = await rawDb(app.services).session.count({ where: { id: { in: sessions.map((s) => s.sessionId) }, revokedAt: null } });
    expect(stillActive).toBe(0);
  });

  it('never lets two administrators delete or disable each other into having none', async () => {
    for (const [first, second] of [
      ['delete', 'delete'],
      ['delete', 'disable'],
      ['disable', 'disable'],
    ] as const) {
      await rawDb(app.services).user.updateMany({ where: { role: 'ADMIN' }, data: { role: 'USER' } });
      const a = await app.services.accounts.createUser({ username: `a${Date.now()}${first}`, password: 'admin password 1' }, 'ADMIN');
      const b = await app.services.accounts.createUser({ username: `b${Date.now()}${second}`, password: 'admin password 1' }, 'ADMIN');
      const results = await Promise.allSettled([app.services.users[first](a.id, OPERATOR), app.services.users[second](b.id, OPERATOR)]);
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
      expect(await rawDb(app.services).user.count({ where: { role: 'ADMIN', disabledAt: null } })).toBe(1);
    }
  });
});

async function loginSession() {
  const registered = await registerUser(app);
  return { sessionId: (await rawDb(app.services).session.findFirstOrThrow({ where: { userId: registered.user.id } })).id };
}
