import { expect } from 'vitest';
import { LOGIN, ME, REFRESH, REGISTER, uniqueName } from '../support/app.js';
import { type Cluster, type Instance, pollUntil } from '../support/instances.js';

// What the multi-instance tests do on an instance: GraphQL operations over HTTP, and the one measurement
// issue 15 asks for, how long after a change's answer another instance stops honouring a token.

export { LOGIN, ME, REFRESH, REGISTER, uniqueName };

/** Issue 15: a change made anywhere is in force on every instance within a second. */
export const PROPAGATION_DEADLINE_MS = 1_000;

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export interface Session {
  username: string;
  password: string;
  userId: string;
  accessToken: string;
  refreshToken: string;
}

export async function register(instance: Instance, username = uniqueName(), password = 'a long enough password'): Promise<Session> {
  const answer = await instance.gql(REGISTER, { input: { username, password } });
  const result = answer.data?.register;
  if (result?.__typename !== 'AuthPayload') throw new Error(`registration on ${instance.name} failed: ${JSON.stringify(answer)}`);
  return { username, password, userId: result.user.id, accessToken: result.accessToken, refreshToken: result.refreshToken };
}

export async function login(instance: Instance, username: string, password: string, headers: Record<string, string> = {}) {
  return instance.gql(LOGIN, { input: { username, password } }, headers);
}

export async function loginSession(instance: Instance, username: string, password: string): Promise<Session> {
  const answer = await login(instance, username, password);
  const result = answer.data?.login;
  if (result?.__typename !== 'AuthPayload') throw new Error(`login on ${instance.name} failed: ${JSON.stringify(answer)}`);
  return { username, password, userId: result.user.id, accessToken: result.accessToken, refreshToken: result.refreshToken };
}

/** Whether `instance` honours the access token for `me` (true), or refuses it as UNAUTHENTICATED (false). */
export async function meAccepted(instance: Instance, accessToken: string): Promise<boolean> {
  const answer = await instance.gql(ME, {}, bearer(accessToken));
  if (answer.data?.me?.id) return true;
  const code = answer.errors?.[0]?.extensions?.code;
  if (code === 'UNAUTHENTICATED') return false;
  throw new Error(`unexpected answer from ${instance.name}: ${JSON.stringify(answer)}`);
}

/** Whether `instance` lets the token into an administrator's query (true), or refuses it (false). */
export async function adminAccepted(instance: Instance, accessToken: string): Promise<boolean> {
  const answer = await instance.gql('query { users(first: 1) { edges { node { id } } } }', {}, bearer(accessToken));
  if (answer.data?.users) return true;
  const code = answer.errors?.[0]?.extensions?.code;
  if (code === 'FORBIDDEN' || code === 'UNAUTHENTICATED') return false;
  throw new Error(`unexpected answer from ${instance.name}: ${JSON.stringify(answer)}`);
}

/**
 * Polls `refused` from `since` (the performance.now() reading taken when the change was answered) until it
 * returns true, and asserts that happened within PROPAGATION_DEADLINE_MS. Prints the delay either way.
 */
export async function expectRefusedWithin(what: string, refused: () => Promise<boolean>, since: number): Promise<number> {
  const delay = await pollUntil(refused, PROPAGATION_DEADLINE_MS, since);
  console.log(
    `[multi-instance] ${what}: ${delay === null ? `still honoured ${PROPAGATION_DEADLINE_MS} ms after the answer` : `refused after ${delay.toFixed(0)} ms`}`,
  );
  expect(delay, `${what}: refused within ${PROPAGATION_DEADLINE_MS} ms`).not.toBeNull();
  expect(delay!).toBeLessThanOrEqual(PROPAGATION_DEADLINE_MS);
  return delay!;
}

const CLI_ADMIN_PASSWORD = 'a long admin password';

/** An administrator made by the admin CLI while the cluster serves, logged in on the first instance. */
export async function cliAdminSession(cluster: Cluster): Promise<Session> {
  const username = uniqueName('root');
  const created = await cluster.admin(['create-admin', username], `${CLI_ADMIN_PASSWORD}\n`);
  expect(created.code, created.stderr).toBe(0);
  return loginSession(cluster.instances[0]!, username, CLI_ADMIN_PASSWORD);
}
