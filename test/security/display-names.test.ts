import { describe, expect, it } from 'vitest';
import { bearer, createTestApp, REGISTER, registerUser, uniqueName } from '../support/app.js';
import { CREATE_API_TOKEN } from '../support/accounts.js';
import { rawDb } from '../support/raw-db.js';

// Display names are shown to other people (PublicUser, admin lists): a name must not hide characters or
// reorder what is shown (bidi overrides making "evil‮gpj.exe" read as "evilexe.jpg", zero-width
// characters making two names look identical).

const app = await createTestApp();

const HIDDEN = {
  'zero width space U+200B': '\u200B',
  'zero width non-joiner U+200C': '\u200C',
  'zero width joiner U+200D': '\u200D',
  'left-to-right mark U+200E': '\u200E',
  'right-to-left mark U+200F': '\u200F',
  'left-to-right embedding U+202A': '\u202A',
  'right-to-left override U+202E': '\u202E',
  'left-to-right isolate U+2066': '\u2066',
  'pop directional isolate U+2069': '\u2069',
  'byte order mark U+FEFF': '\uFEFF',
  'soft hyphen U+00AD': '\u00AD',
  'word joiner U+2060': '\u2060',
  'invisible separator U+2063': '\u2063',
  'arabic letter mark U+061C': '\u061C',
  'mongolian vowel separator U+180E': '\u180E',
  'tag character U+E0041': '\u{E0041}',
  'hangul filler U+3164': '\u3164',
  'combining grapheme joiner U+034F': '\u034F',
  'braille blank U+2800': '\u2800',
  'line separator U+2028': '\u2028',
  'escape U+001B': '\u001B',
  'delete U+007F': '\u007F',
  'C1 control U+0085': '\u0085',
  'private use U+E000': '\uE000',
  'lone surrogate U+D800': '\uD800',
};

const UPDATE = /* GraphQL */ `
  mutation ($input: UpdateProfileInput!) {
    updateProfile(input: $input) { __typename ... on User { fullname } ... on ValidationError { code fieldErrors { field message } } }
  }
`;

describe('display names', () => {
  it.each(Object.entries(HIDDEN))('refuse %s, at registration and in a profile change, and change nothing', async (_label, character) => {
    const name = `Ann${character}a Smith`;
    const registered = await app.gql(REGISTER, { input: { username: uniqueName(), password: 'a long enough password', fullname: name } });
    expect(registered.data.register).toMatchObject({ __typename: 'ValidationError', code: 'VALIDATION_FAILED', fieldErrors: [{ field: 'fullname' }] });
    expect(registered.data.register.fieldErrors[0].message).toMatch(/invisible|formatting|control/);

    const { accessToken, user } = await registerUser(app);
    const updated = await app.gql(UPDATE, { input: { fullname: name } }, bearer(accessToken));
    expect(updated.data.updateProfile).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ field: 'fullname' }] });
    expect((await rawDb(app.services).user.findUniqueOrThrow({ where: { id: user.id } })).fullname).toBeNull();
  });

  it.each(Object.entries(HIDDEN))('refuse %s in an API token name, and create no token', async (_label, character) => {
    const { accessToken } = await registerUser(app);
    const created = await app.gql(CREATE_API_TOKEN, { input: { name: `ci${character}exe.txt`, scopes: ['PROFILE_READ'] } }, bearer(accessToken));
    expect(created.data.createApiToken).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ field: 'name' }] });
    const listed = await app.gql('query { apiTokens { id } }', {}, bearer(accessToken));
    expect(listed.data.apiTokens).toEqual([]);
  });

  it.each(['Zoë Çelik', 'Zoe\u0308 (combining diaeresis)', '李小龍', 'محمد علي', 'Ева Иванова', 'Anna ❤️', "O'Brien-Smith Jr.", 'Nguyễn\u00A0Văn A'])(
    'accept %j',
    async (name) => {
      const { accessToken } = await registerUser(app);
      const updated = await app.gql(UPDATE, { input: { fullname: name } }, bearer(accessToken));
      expect(updated.data.updateProfile).toEqual({ __typename: 'User', fullname: name });
    },
  );

  it('leave emails and usernames to their own ASCII rules', async () => {
    for (const input of [{ email: 'a\u200B@example.com' }, { email: 'a@example.com\u202E' }]) {
      const { accessToken } = await registerUser(app);
      const updated = await app.gql(UPDATE, { input }, bearer(accessToken));
      expect(updated.data.updateProfile).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ field: 'email' }] });
    }
    const registered = await app.gql(REGISTER, { input: { username: 'ann\u200Ba', password: 'a long enough password' } });
    expect(registered.data.register).toMatchObject({ __typename: 'ValidationError', fieldErrors: [{ field: 'username' }] });
  });
});
