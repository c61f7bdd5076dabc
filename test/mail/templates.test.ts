import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILT_IN_TEMPLATES_DIR, describeMinutes, loadTemplates, MAIL_KINDS, type MailKind, type MailVariables } from '../../src/mail/templates.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'gatehouse-templates-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let dirCount = 0;
/** A fresh EMAIL_TEMPLATES_DIR holding `files` (paths relative to it). */
function templateDir(files: Record<string, string>): string {
  const dir = path.join(scratch, `dir-${++dirCount}`);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

const base = { productName: 'Acme ID', appUrl: 'https://id.acme.test', username: 'alice', email: 'alice@example.com', expiresInMinutes: 30 };
const variablesFor: Record<MailKind, MailVariables> = {
  verify_email: { ...base, link: 'https://id.acme.test/verify?token=v123' },
  reset_password: { ...base, link: 'https://id.acme.test/reset?token=r123' },
  confirm_email_change: { ...base, link: 'https://id.acme.test/change?token=c123', newEmail: 'alice@new.example' },
  email_change_notice: { ...base, newEmail: 'alice@new.example' },
  sign_in: { ...base, link: 'https://id.acme.test/sign-in?token=s123', code: '048213' },
};

describe('built-in templates', () => {
  it('render every kind with the product name, the lifetime, and the link (all but the notice) in text and HTML', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    expect(templates.locale).toBe('en');
    expect(templates.overrides).toEqual([]);
    for (const kind of MAIL_KINDS) {
      const variables = variablesFor[kind];
      const mail = templates.render(kind, variables);
      expect(mail.subject, kind).toContain('Acme ID');
      for (const body of [mail.text, mail.html]) {
        expect(body, kind).toContain('Acme ID');
        expect(body, kind).toContain('alice');
        expect(body, kind).toContain('30 minutes');
        expect(body, kind).not.toMatch(/\{\{|\}\}/);
        if (variables.link !== undefined) expect(body, kind).toContain(variables.link);
        else expect(body, kind).not.toContain('token=');
      }
      expect(mail.html, kind).toMatch(/^<!doctype html>/);
    }
  });

  it('say what to do if the recipient did not ask for the mail', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    for (const kind of MAIL_KINDS) expect(templates.render(kind, variablesFor[kind]).text, kind).toMatch(/did not|was not you/);
  });

  it('show the sign-in code and the link; tell the old address about the new one and to change the password', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    const signIn = templates.render('sign_in', variablesFor.sign_in);
    expect(signIn.text).toMatch(/^ {4}048213$/m);
    expect(signIn.html).toMatch(/font-size: 32px[^>]*>048213</);
    const notice = templates.render('email_change_notice', variablesFor.email_change_notice);
    expect(notice.text).toContain('alice@new.example');
    expect(notice.text).toContain('change your password');
    expect(notice.html).not.toContain('href=');
  });

  it('turn the lifetime into hours or days when it divides evenly', async () => {
    expect([1, 15, 90, 60, 1440, 2880].map(describeMinutes)).toEqual(['1 minute', '15 minutes', '90 minutes', '1 hour', '24 hours', '2 days']);
    const templates = await loadTemplates({ locale: 'en' });
    expect(templates.render('verify_email', { ...variablesFor.verify_email, expiresInMinutes: 1440 }).text).toContain('expires in 24 hours');
  });

  it('escape every value in HTML, and only there', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    const hostile = `<script>alert("x")</script>&'`;
    const mail = templates.render('verify_email', { ...variablesFor.verify_email, username: hostile });
    expect(mail.html).not.toContain('<script>');
    expect(mail.html).toContain('&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;&#38;&#39;');
    expect(mail.text).toContain(hostile);
  });

  it('strip line breaks from values in the subject (header injection)', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    const mail = templates.render('reset_password', { ...variablesFor.reset_password, productName: 'Acme\r\nBcc: victim@example.com\nX' });
    expect(mail.subject).not.toMatch(/[\r\n]/);
    expect(mail.subject).toBe('Reset your Acme Bcc: victim@example.com X password');
  });

  it('refuse to render without a variable the kind needs, or with a code that is not six digits', async () => {
    const templates = await loadTemplates({ locale: 'en' });
    const { link: _link, ...withoutLink } = variablesFor.reset_password;
    expect(() => templates.render('reset_password', withoutLink)).toThrow(/needs the variable link/);
    expect(() => templates.render('sign_in', { ...variablesFor.sign_in, code: '12345' })).toThrow(/six-digit code/);
  });

  it('fall back to English when no template exists for the locale anywhere', async () => {
    const templates = await loadTemplates({ locale: 'de', dir: templateDir({}) });
    expect(templates.requestedLocale).toBe('de');
    expect(templates.locale).toBe('en');
    expect(templates.render('verify_email', variablesFor.verify_email).subject).toBe('Confirm your email address for Acme ID');
  });
});

describe('override templates from EMAIL_TEMPLATES_DIR', () => {
  it('replace one file; every other file stays built-in', async () => {
    const dir = templateDir({ 'en/reset_password.txt': 'Subject: {{productName}}: new password\n\nGo to {{link}}, {{ username }}.\n' });
    const templates = await loadTemplates({ locale: 'en', dir });
    expect(templates.overrides).toEqual([path.join(dir, 'en', 'reset_password.txt')]);
    const reset = templates.render('reset_password', variablesFor.reset_password);
    expect(reset).toMatchObject({ subject: 'Acme ID: new password', text: 'Go to https://id.acme.test/reset?token=r123, alice.\n' });
    // The HTML part of the same kind and every other kind are the built-ins.
    const builtIn = readFileSync(path.join(BUILT_IN_TEMPLATES_DIR, 'en', 'reset_password.html'), 'utf8');
    expect(reset.html).toBe(builtIn.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => String(placeholderValue(name))));
    expect(templates.render('verify_email', variablesFor.verify_email).subject).toBe('Confirm your email address for Acme ID');
  });

  it('take a complete set for a locale that is not built in; refuse a partial one', async () => {
    const complete: Record<string, string> = {};
    for (const kind of MAIL_KINDS) {
      complete[`fr/${kind}.txt`] = `Subject: ${kind} {{productName}}\n\nBonjour {{username}}\n`;
      complete[`fr/${kind}.html`] = '<p>Bonjour {{username}}</p>';
    }
    const templates = await loadTemplates({ locale: 'fr', dir: templateDir(complete) });
    expect(templates.locale).toBe('fr');
    expect(templates.render('sign_in', variablesFor.sign_in)).toEqual({ subject: 'sign_in Acme ID', text: 'Bonjour alice\n', html: '<p>Bonjour alice</p>' });

    const { 'fr/sign_in.html': _missing, ...partial } = complete;
    const dir = templateDir(partial);
    await expect(loadTemplates({ locale: 'fr', dir })).rejects.toThrow(`${path.join(dir, 'fr')} must supply every template; missing: sign_in.html`);
  });

  it('fail naming the file when it uses an unknown placeholder, or one another kind has', async () => {
    let dir = templateDir({ 'en/verify_email.html': '<p>Hi {{userName}}</p>' });
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(
      `${path.join(dir, 'en', 'verify_email.html')} uses the unknown placeholder {{userName}}`,
    );
    // The code exists only in the sign-in mail.
    dir = templateDir({ 'en/reset_password.txt': 'Subject: Reset\n\nCode {{code}}\n' });
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`${path.join(dir, 'en', 'reset_password.txt')} uses the unknown placeholder {{code}}`);
    dir = templateDir({ 'en/sign_in.html': '<p>{{code}</p>' });
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`${path.join(dir, 'en', 'sign_in.html')} has a malformed placeholder`);
  });

  it('fail naming the file when the Subject line is missing, empty or not followed by a blank line', async () => {
    for (const [content, problem] of [
      ['Hello {{username}}\n\nbody\n', 'must start with a "Subject: ..." line'],
      ['\nSubject: Hi\n\nbody\n', 'must start with a "Subject: ..." line'],
      ['Subject:   \n\nbody\n', 'has an empty Subject line'],
      ['Subject: Hi\nbody\n', 'needs a blank line between the Subject line and the body'],
    ]) {
      const dir = templateDir({ 'en/verify_email.txt': content! });
      await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`${path.join(dir, 'en', 'verify_email.txt')} ${problem}`);
    }
  });

  it('accept Windows line endings and a byte-order mark', async () => {
    const dir = templateDir({ 'en/verify_email.txt': '\uFEFFSubject: Hi {{username}}\r\n\r\nLine one\r\n{{link}}\r\n' });
    const mail = (await loadTemplates({ locale: 'en', dir })).render('verify_email', variablesFor.verify_email);
    expect(mail.subject).toBe('Hi alice');
    expect(mail.text).toBe('Line one\nhttps://id.acme.test/verify?token=v123\n');
  });

  it('fail naming the file when an override cannot be read or is not UTF-8', async () => {
    const dir = templateDir({ 'en/verify_email.txt/placeholder': '' }); // a folder where the file should be
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`${path.join(dir, 'en', 'verify_email.txt')} cannot be read (EISDIR)`);
    const latin1 = templateDir({});
    mkdirSync(path.join(latin1, 'en'));
    writeFileSync(path.join(latin1, 'en', 'sign_in.html'), Buffer.from([0x3c, 0x70, 0x3e, 0xe9, 0x3c, 0x2f, 0x70, 0x3e]));
    await expect(loadTemplates({ locale: 'en', dir: latin1 })).rejects.toThrow(`${path.join(latin1, 'en', 'sign_in.html')} is not valid UTF-8`);
  });

  it('fail on a misspelt template name, templates outside a locale folder, a missing directory, a locale that is not a name', async () => {
    let dir = templateDir({ 'en/verify-email.txt': 'Subject: Hi\n\nbody\n' });
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`${path.join(dir, 'en', 'verify-email.txt')} is not a known template`);
    dir = templateDir({ 'verify_email.txt': 'Subject: Hi\n\nbody\n' });
    await expect(loadTemplates({ locale: 'en', dir })).rejects.toThrow(`move verify_email.txt from ${dir} to ${path.join(dir, 'en')}`);
    await expect(loadTemplates({ locale: 'en', dir: path.join(scratch, 'absent') })).rejects.toThrow(`${path.join(scratch, 'absent')} cannot be read (ENOENT)`);
    await expect(loadTemplates({ locale: '../en' })).rejects.toThrow('is not a locale name');
  });
});

function placeholderValue(name: string): string | number {
  const values: Record<string, string | number> = { ...variablesFor.reset_password, expiresIn: '30 minutes' };
  const value = values[name];
  if (value === undefined) throw new Error(`no value for ${name}`);
  return value;
}
