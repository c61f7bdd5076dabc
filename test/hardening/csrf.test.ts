import { describe, expect, it, vi } from 'vitest';
import { createTestApp, uniqueName } from '../support/app.js';
import { rawDb } from '../support/raw-db.js';

// Yoga's CSRF prevention: a request a browser would send cross-site without a preflight ("simple":
// a form post, text/plain, a plain GET) is refused unless it carries the x-graphql-yoga-csrf header.

const app = await createTestApp({ NODE_ENV: 'development', CORS_ORIGINS: '*' });

const REGISTER = 'mutation ($input: RegisterInput!) { register(input: $input) { __typename } }';

function registerBody(username: string) {
  return JSON.stringify({ query: REGISTER, variables: { input: { username, password: 'a long enough password' } } });
}

function post(body: BodyInit, headers: Record<string, string>) {
  return app.yoga.fetch('http://gatehouse.test/graphql', { method: 'POST', headers, body });
}

const userNamed = (username: string) => rawDb(app.services).user.findFirst({ where: { username } });

describe('CSRF prevention', () => {
  it.each([
    ['text/plain', (username: string) => registerBody(username)],
    ['text/plain;charset=UTF-8', (username: string) => registerBody(username)],
    [
      'application/x-www-form-urlencoded',
      (username: string) =>
        new URLSearchParams({ query: REGISTER, variables: JSON.stringify({ input: { username, password: 'a long enough password' } }) }).toString(),
    ],
    [
      'multipart/form-data; boundary=x',
      (username: string) => `--x\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${registerBody(username)}\r\n--x--\r\n`,
    ],
  ])('refuses a simple POST with content-type %s (403), before any work', async (contentType, body) => {
    const consume = vi.spyOn(app.services.rateLimiter, 'consume');
    const username = uniqueName('csrf');
    const response = await post(body(username), { 'content-type': contentType, origin: 'https://evil.example' });
    expect(response.status).toBe(403);
    expect((await response.json()).errors[0]).toMatchObject({ message: expect.stringMatching(/CSRF/), extensions: { code: 'CSRF_HEADER_REQUIRED' } });
    expect(await userNamed(username)).toBeNull();
    expect(consume).not.toHaveBeenCalled();
    consume.mockRestore();
  });

  it('refuses a POST without a content-type', async () => {
    const username = uniqueName('csrf');
    const response = await app.yoga.fetch('http://gatehouse.test/graphql', { method: 'POST', body: new Blob([registerBody(username)]) });
    expect(response.status).toBe(403);
    expect((await response.json()).errors[0].extensions.code).toBe('CSRF_HEADER_REQUIRED');
    expect(await userNamed(username)).toBeNull();
  });

  it('refuses a plain GET (an <img> or a link) without the header', async () => {
    const response = await app.yoga.fetch('http://gatehouse.test/graphql?query=%7BuserExists(username%3A%22x%22)%7D');
    expect(response.status).toBe(403);
    expect((await response.json()).errors[0].extensions.code).toBe('CSRF_HEADER_REQUIRED');
  });

  it('accepts application/json (which a browser preflights)', async () => {
    const username = uniqueName('json');
    const response = await post(registerBody(username), { 'content-type': 'application/json' });
    expect(response.status).toBe(200);
    expect((await response.json()).data.register.__typename).toBe('AuthPayload');
    expect(await userNamed(username)).not.toBeNull();
  });

  it('accepts a form post and a GET that carry the x-graphql-yoga-csrf header', async () => {
    const username = uniqueName('form');
    const form = new URLSearchParams({ query: REGISTER, variables: JSON.stringify({ input: { username, password: 'a long enough password' } }) });
    const response = await post(form.toString(), { 'content-type': 'application/x-www-form-urlencoded', 'x-graphql-yoga-csrf': '1' });
    expect(response.status).toBe(200);
    expect((await response.json()).data.register.__typename).toBe('AuthPayload');
    expect(await userNamed(username)).not.toBeNull();

    const get = await app.yoga.fetch(`http://gatehouse.test/graphql?query=${encodeURIComponent(`{ userExists(username: "${username}") }`)}`, {
      headers: { 'x-graphql-yoga-csrf': '1' },
    });
    expect(get.status).toBe(200);
    expect((await get.json()).data).toEqual({ userExists: true });
  });
});
