import { beforeAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../support/db.js';
import { type Instance, useInstances } from '../support/instances.js';
import { adminAccepted, bearer, expectRefusedWithin, loginSession, meAccepted, register, type Session, cliAdminSession } from './operations.js';

// Issue 15: whatever ends a session or takes a right away, on whichever instance or through the admin CLI,
// is in force on every other instance within 1 s, although each keeps caches (sessions, users, verified
// tokens). Each case first has the other instance honour the token (so its caches hold it), then makes
// the change on A and polls B from the change's answer, with a deadline of 1 s.
// Only on PostgreSQL (npm run test:postgres): several servers on one database; the SQLite run skips it.

const SET_ROLE = 'mutation ($id: ID!, $role: Role!) { setUserRole(id: $id, role: $role) { __typename } }';
const DISABLE = 'mutation ($id: ID!) { disableUser(id: $id) { __typename } }';
const DELETE = 'mutation ($id: ID!) { deleteUser(id: $id) { __typename } }';
const CHANGE_PASSWORD = 'mutation ($current: String!, $next: String!) { changePassword(currentPassword: $current, newPassword: $next) { __typename } }';
const MY_SESSIONS = 'query { mySessions { id current } }';

/** Has `instance` honour the token twice, so whatever it caches about it is in its caches. */
async function warm(instance: Instance, token: string, check = meAccepted): Promise<void> {
  expect(await check(instance, token)).toBe(true);
  expect(await check(instance, token)).toBe(true);
}

const refusedBy = (instance: Instance, token: string) => async () => !(await meAccepted(instance, token));
const adminRefusedBy = (instance: Instance, token: string) => async () => !(await adminAccepted(instance, token));

describe.runIf(onPostgres)('revocation across instances', { timeout: 120_000 }, () => {
  const cluster = useInstances({ count: 2 });
  let admin: Session;

  async function mutate(instance: Instance, query: string, variables: Record<string, unknown>, token: string) {
    const answer = await instance.gql(query, variables, bearer(token));
    expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
    return answer.data;
  }

  /** A second administrator, made one by `admin` through the API. */
  async function anotherAdmin(on: Instance): Promise<Session> {
    const user = await register(on);
    expect((await mutate(on, SET_ROLE, { id: user.userId, role: 'ADMIN' }, admin.accessToken)).setUserRole.__typename).toBe('User');
    return loginSession(on, user.username, user.password);
  }

  beforeAll(async () => {
    admin = await cliAdminSession(cluster);
  }, 120_000);

  describe('by the user, on A', () => {
    it('logout: the access token is refused by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const session = await register(a!);
      await warm(b!, session.accessToken);
      expect((await mutate(a!, 'mutation { logout }', {}, session.accessToken)).logout).toBe(true);
      await expectRefusedWithin('logout on A -> B', refusedBy(b!, session.accessToken), performance.now());
    });

    it('revokeSession: the revoked session is refused by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const first = await register(a!);
      const second = await loginSession(b!, first.username, first.password);
      await warm(b!, second.accessToken);
      const sessions = (await mutate(a!, MY_SESSIONS, {}, first.accessToken)).mySessions as { id: string; current: boolean }[];
      const other = sessions.find((session) => !session.current)!;
      expect((await mutate(a!, 'mutation ($id: ID!) { revokeSession(id: $id) }', { id: other.id }, first.accessToken)).revokeSession).toBe(true);
      await expectRefusedWithin('revokeSession on A -> B', refusedBy(b!, second.accessToken), performance.now());
      // The session that revoked the other one goes on, on both.
      expect(await meAccepted(b!, first.accessToken)).toBe(true);
    });

    it('logout everywhere: every session of the user is refused by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const first = await register(a!);
      const others = [await loginSession(b!, first.username, first.password), await loginSession(a!, first.username, first.password)];
      for (const session of [first, ...others]) await warm(b!, session.accessToken);
      expect((await mutate(a!, 'mutation { logout(allSessions: true) }', {}, first.accessToken)).logout).toBe(true);
      // Polled side by side from the one answer: one after another, each would also count the others' polls.
      const answered = performance.now();
      await Promise.all(
        [first, ...others].map((session, i) =>
          expectRefusedWithin(`logout everywhere on A -> session ${i} on B`, refusedBy(b!, session.accessToken), answered),
        ),
      );
    });

    it('changePassword: the other sessions are refused by B within 1 s; the one that changed it goes on', async () => {
      const [a, b] = cluster.instances;
      const first = await register(a!);
      const other = await loginSession(b!, first.username, first.password);
      await warm(b!, other.accessToken);
      await warm(b!, first.accessToken);
      const changed = await mutate(a!, CHANGE_PASSWORD, { current: first.password, next: 'another long enough password' }, first.accessToken);
      expect(changed.changePassword.__typename).toBe('PasswordChanged');
      await expectRefusedWithin('changePassword on A -> other session on B', refusedBy(b!, other.accessToken), performance.now());
      expect(await meAccepted(b!, first.accessToken)).toBe(true);
    });
  });

  describe('by an administrator, on A', () => {
    it('disableUser: the user is refused by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const user = await register(b!);
      await warm(b!, user.accessToken);
      expect((await mutate(a!, DISABLE, { id: user.userId }, admin.accessToken)).disableUser.__typename).toBe('User');
      await expectRefusedWithin('disableUser on A -> B', refusedBy(b!, user.accessToken), performance.now());
    });

    it('deleteUser: the user is refused by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const user = await register(b!);
      await warm(b!, user.accessToken);
      expect((await mutate(a!, DELETE, { id: user.userId }, admin.accessToken)).deleteUser.__typename).toBe('User');
      await expectRefusedWithin('deleteUser on A -> B', refusedBy(b!, user.accessToken), performance.now());
    });

    it('setUserRole USER (demote): the former administrator is refused administration by B within 1 s', async () => {
      const [a, b] = cluster.instances;
      const demoted = await anotherAdmin(a!);
      await warm(b!, demoted.accessToken, adminAccepted);
      expect((await mutate(a!, SET_ROLE, { id: demoted.userId, role: 'USER' }, admin.accessToken)).setUserRole.__typename).toBe('User');
      await expectRefusedWithin('demote on A -> admin query on B', adminRefusedBy(b!, demoted.accessToken), performance.now());
      // Still a user: `me` goes on.
      expect(await meAccepted(b!, demoted.accessToken)).toBe(true);
    });
  });

  describe('by the admin CLI, while both instances serve', () => {
    it('disable: the user is refused by A and B within 1 s of the command finishing', async () => {
      const [a, b] = cluster.instances;
      const user = await register(a!);
      const onB = await loginSession(b!, user.username, user.password);
      for (const instance of cluster.instances) {
        await warm(instance, user.accessToken);
        await warm(instance, onB.accessToken);
      }
      const result = await cluster.admin(['disable', user.username]);
      expect(result.code, result.stderr).toBe(0);
      const answered = performance.now();
      await Promise.all(
        [a!, b!].flatMap((instance) =>
          [user, onB].map((session) => expectRefusedWithin(`CLI disable -> ${instance.name}`, refusedBy(instance, session.accessToken), answered)),
        ),
      );
    });

    it('set-role USER: the former administrator is refused administration by A and B within 1 s of the command finishing', async () => {
      const [a, b] = cluster.instances;
      const demoted = await anotherAdmin(a!);
      for (const instance of cluster.instances) await warm(instance, demoted.accessToken, adminAccepted);
      const result = await cluster.admin(['set-role', demoted.username, 'USER']);
      expect(result.code, result.stderr).toBe(0);
      const answered = performance.now();
      await Promise.all(
        [a!, b!].map((instance) => expectRefusedWithin(`CLI set-role USER -> ${instance.name}`, adminRefusedBy(instance, demoted.accessToken), answered)),
      );
    });
  });
});
