import { describe, expect, it } from 'vitest';
import { onPostgres } from '../support/db.js';
import { useInstances } from '../support/instances.js';
import { bearer, expectRefusedWithin, meAccepted, REFRESH, REGISTER, register, uniqueName } from './operations.js';

// Two real servers on one PostgreSQL database: what the database decides (refresh-token generations,
// unique names) holds across instances, whichever instance a request lands on.
// Only on PostgreSQL (npm run test:postgres): several servers on one database; the SQLite run skips it.

const GRACE_SECONDS = 2;

describe.runIf(onPostgres)('two instances on one database', { timeout: 120_000 }, () => {
  const cluster = useInstances({ count: 2, env: { REFRESH_REUSE_GRACE_SECONDS: String(GRACE_SECONDS) } });
  const refresh = async (instance: (typeof cluster.instances)[number], token: string) => {
    const answer = await instance.gql(REFRESH, { token });
    expect(answer.errors, JSON.stringify(answer)).toBeUndefined();
    return answer.data.refresh as { __typename: string; code?: string; accessToken?: string; refreshToken?: string };
  };

  it('racing refreshes of one token sent to A and B at once converge on one new token', async () => {
    const [a, b] = cluster.instances;
    for (let round = 0; round < 5; round += 1) {
      const session = await register(round % 2 ? a! : b!);
      const answers = await Promise.all([refresh(a!, session.refreshToken), refresh(b!, session.refreshToken)]);
      for (const answer of answers) expect(answer.__typename).toBe('AuthPayload');
      expect(answers[0]!.refreshToken).toBe(answers[1]!.refreshToken);
      expect(answers[0]!.refreshToken).not.toBe(session.refreshToken);
      // The converged token is the session's live one, on either instance.
      expect((await refresh(round % 2 ? b! : a!, answers[0]!.refreshToken!)).__typename).toBe('AuthPayload');
    }
  });

  it('a refresh token rotated on A and presented again on B after the grace window is REFRESH_TOKEN_REUSED; the session refresh tokens die on both', async () => {
    const [a, b] = cluster.instances;
    const session = await register(a!);
    const rotated = await refresh(a!, session.refreshToken);
    expect(rotated.__typename).toBe('AuthPayload');
    await new Promise((resolve) => setTimeout(resolve, GRACE_SECONDS * 1000 + 500));
    expect(await refresh(b!, session.refreshToken)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REUSED' });
    // The newest token, which A itself issued and would know from its own memory, is refused by both.
    expect(await refresh(a!, rotated.refreshToken!)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REVOKED' });
    expect(await refresh(b!, rotated.refreshToken!)).toMatchObject({ __typename: 'InvalidRefreshTokenError', code: 'REFRESH_TOKEN_REVOKED' });
  });

  it('after a reuse detected on B, the session access tokens are refused by A (which issued them) within 1 s', async () => {
    const [a, b] = cluster.instances;
    const session = await register(a!);
    const rotated = await refresh(a!, session.refreshToken);
    // A has seen the new access token honoured: its caches hold the live session.
    expect(await meAccepted(a!, rotated.accessToken!)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, GRACE_SECONDS * 1000 + 500));
    expect((await refresh(b!, session.refreshToken)).code).toBe('REFRESH_TOKEN_REUSED');
    await expectRefusedWithin('reuse on B -> access token on A', async () => !(await meAccepted(a!, rotated.accessToken!)), performance.now());
    expect(await meAccepted(b!, rotated.accessToken!)).toBe(false);
  });

  it('50 parallel registrations of one name spread over A and B create exactly one user', async () => {
    const username = uniqueName('race');
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        cluster.instances[i % 2]!.gql(REGISTER, { input: { username, password: `a long enough password ${i}`, email: `race${i}@example.com` } }),
      ),
    );
    const kinds = answers.map((answer) => answer.data?.register?.__typename ?? JSON.stringify(answer.errors));
    expect(kinds.filter((kind) => kind === 'AuthPayload')).toHaveLength(1);
    expect(kinds.filter((kind) => kind === 'UsernameTakenError')).toHaveLength(49);
    const rows = await cluster.sql('SELECT id FROM "User" WHERE username = $1', [username]);
    expect(rows).toHaveLength(1);
    // The winner's session works on both instances.
    const winner = answers.find((answer) => answer.data?.register?.__typename === 'AuthPayload')!.data.register;
    for (const instance of cluster.instances) {
      const me = await instance.gql('query { me { id } }', {}, bearer(winner.accessToken));
      expect(me.data?.me?.id).toBe(rows[0]!.id);
    }
  });

  it('the admin CLI works on the database while both instances serve: an administrator it creates can log in on either', async () => {
    const username = uniqueName('root');
    const created = await cluster.admin(['create-admin', username], 'a long admin password\n');
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    for (const instance of cluster.instances) {
      const answer = await instance.gql('mutation ($input: LoginInput!) { login(input: $input) { __typename ... on AuthPayload { user { role } } } }', {
        input: { username, password: 'a long admin password' },
      });
      expect(answer.data?.login).toEqual({ __typename: 'AuthPayload', user: { role: 'ADMIN' } });
    }
  });
});
