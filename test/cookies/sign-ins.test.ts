import { buildSchema, getNamedType, isObjectType, isUnionType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schemaSdl } from '../../src/schema/sdl.js';
import { codeOf, createMailApp, linkOf, mailTo, registerWithEmail, SUBJECT, testSmtpServer } from '../email/support.js';
import { SIGN_IN_FIELDS, send } from './support.js';

// Every answer that issues a refresh token sets the cookie. The list of such fields is read from the
// schema, so a new way of signing in fails here until it is covered (register, login and refresh in
// transport.test.ts; the mailed ones below).

const COVERED = ['login', 'refresh', 'register', 'resetPassword', 'signInWithCode', 'signInWithLink'];

const smtp = await testSmtpServer();
const app = await createMailApp(smtp, { REFRESH_TOKEN_TRANSPORT: 'cookie' });

describe('fields issuing refresh tokens', () => {
  it('are exactly the covered ones', () => {
    const schema = buildSchema(schemaSdl());
    const issuing = [schema.getQueryType(), schema.getMutationType()].flatMap((root) =>
      Object.values(root?.getFields() ?? {})
        .filter((field) => {
          const type = getNamedType(field.type);
          const members = isUnionType(type) ? type.getTypes() : isObjectType(type) ? [type] : [];
          return members.some((member) => member.name === 'AuthPayload');
        })
        .map((field) => field.name),
    );
    expect(issuing.sort()).toEqual(COVERED);
  });

  it('resetPassword sets the cookie and answers no refresh token', async () => {
    const user = await registerWithEmail(app);
    await send(app, 'mutation ($email: String!) { requestPasswordReset(email: $email) }', { email: user.email });
    const { token } = linkOf(await mailTo(smtp, user.email, SUBJECT.reset));
    const reset = await send(app, `mutation ($token: String!) { resetPassword(token: $token, newPassword: "a brand new password") { ${SIGN_IN_FIELDS} } }`, {
      token,
    });
    expect(reset.data?.resetPassword).toMatchObject({ __typename: 'AuthPayload', refreshToken: null });
    expect(reset.cookie?.value).toMatch(/^grt_/);
    expect(reset.cookie?.attributes).toMatchObject({ httponly: '', samesite: 'Strict', path: '/graphql' });
  });

  it('signInWithCode and signInWithLink set the cookie and answer no refresh token', async () => {
    const user = await registerWithEmail(app);
    const REQUEST = 'mutation ($email: String!) { requestSignInCode(email: $email) }';
    await send(app, REQUEST, { email: user.email });
    const byCode = await send(app, `mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { ${SIGN_IN_FIELDS} } }`, {
      email: user.email,
      code: codeOf(await mailTo(smtp, user.email, SUBJECT.signIn)),
    });
    expect(byCode.data?.signInWithCode).toMatchObject({ __typename: 'AuthPayload', refreshToken: null });
    expect(byCode.cookie?.value).toMatch(/^grt_/);

    // Another user: a new request would replace the first user's code before its mail is read.
    const other = await registerWithEmail(app);
    await send(app, REQUEST, { email: other.email });
    const byLink = await send(app, `mutation ($token: String!) { signInWithLink(token: $token) { ${SIGN_IN_FIELDS} } }`, {
      token: linkOf(await mailTo(smtp, other.email, SUBJECT.signIn)).token,
    });
    expect(byLink.data?.signInWithLink).toMatchObject({ __typename: 'AuthPayload', refreshToken: null });
    expect(byLink.cookie?.value).toMatch(/^grt_/);
  });

  it('a failed sign-in sets no cookie', async () => {
    const user = await registerWithEmail(app);
    const wrong = await send(app, `mutation ($email: String!) { signInWithCode(email: $email, code: "000000") { ${SIGN_IN_FIELDS} } }`, { email: user.email });
    expect(wrong.data?.signInWithCode.__typename).toBe('InvalidTokenError');
    expect(wrong.cookie).toBeUndefined();
  });
});
