import { createConnection, createServer, type Socket } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, describe, expect, it } from 'vitest';
import { developmentOutbox, MailSendError, type OutgoingMail, parseSmtpUrl, smtpTransport } from '../../src/mail/transport.js';
import { startSmtpServer } from '../support/smtp.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'gatehouse-transport-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let mailCount = 0;
function outgoing(overrides: Partial<OutgoingMail> = {}): OutgoingMail {
  const id = `mail-${process.pid}-${++mailCount}`;
  return {
    id,
    to: 'alice@example.com',
    from: 'Acme ID <no-reply@acme.test>',
    subject: `Reset your password ${id}`,
    text: `Open https://id.acme.test/reset?token=secret-${id}\n`,
    html: `<p><a href="https://id.acme.test/reset?token=secret-${id}">Reset</a></p>`,
    ...overrides,
  };
}

describe('smtpTransport', () => {
  it('delivers subject, text, HTML, sender and recipient, with a Message-ID made from the mail id', async () => {
    const server = await startSmtpServer();
    const transport = smtpTransport(server.url);
    try {
      const mail = outgoing();
      await transport.send(mail);
      const received = await server.waitForMail((parsed) => parsed.subject === mail.subject);
      expect(received.text?.trim()).toBe(mail.text.trim());
      expect(received.html).toContain(`token=secret-${mail.id}`);
      expect(received.from?.value).toEqual([{ name: 'Acme ID', address: 'no-reply@acme.test' }]);
      expect(received.to).toMatchObject({ value: [{ address: 'alice@example.com' }] });
      expect(received.messageId).toBe(`<${mail.id}@acme.test>`);
      expect(received.headers.get('auto-submitted')).toBe('auto-generated');
    } finally {
      await transport.close();
      await server.stop();
    }
  });

  it('logs in with the user and password from the URL, percent-decoded', async () => {
    const server = await startSmtpServer({ auth: { user: 'mailer@acme.test', password: 'p@ss:w/rd#1' } });
    expect(server.url).toContain('mailer%40acme.test:p%40ss%3Aw%2Frd%231@');
    const good = smtpTransport(server.url);
    const bad = smtpTransport(server.url.replace('p%40ss', 'wrong'));
    try {
      const mail = outgoing();
      await good.send(mail);
      await server.waitForMail((parsed) => parsed.subject === mail.subject);
      const refused = await bad.send(outgoing()).catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(MailSendError);
      expect(refused).toMatchObject({ code: 'EAUTH', responseCode: 535, permanent: false });
      expect((refused as Error).message).not.toContain('wrong');
    } finally {
      await good.close();
      await bad.close();
      await server.stop();
    }
  });

  it('rejects when the server refuses (temporary 451, permanent 550), without the body in the error, and delivers once it accepts', async () => {
    const server = await startSmtpServer();
    const transport = smtpTransport(server.url);
    try {
      const mail = outgoing();
      server.rejectWith(451);
      const temporary = await transport.send(mail).catch((error: unknown) => error);
      expect(temporary).toMatchObject({ name: 'MailSendError', responseCode: 451, permanent: false });
      server.rejectWith(550);
      const permanent = await transport.send(mail).catch((error: unknown) => error);
      expect(permanent).toMatchObject({ name: 'MailSendError', responseCode: 550, permanent: true });
      for (const error of [temporary, permanent]) {
        expect(JSON.stringify({ ...(error as object), message: (error as Error).message, stack: (error as Error).stack })).not.toContain('secret-');
        expect((error as Error).cause).toBeUndefined();
      }
      expect(server.messages).toHaveLength(0);

      server.rejectWith(null);
      await transport.send(mail);
      await server.waitForMail((parsed) => parsed.subject === mail.subject);
    } finally {
      await transport.close();
      await server.stop();
    }
  });

  it('rejects while the server is down and delivers the same mail once it is back on the same port', async () => {
    const first = await startSmtpServer();
    const transport = smtpTransport(first.url);
    try {
      await first.stop();
      const mail = outgoing();
      const down = await transport.send(mail).catch((error: unknown) => error);
      expect(down).toMatchObject({ name: 'MailSendError', code: 'ESOCKET', permanent: false });
      expect((down as Error).message).toContain('ECONNREFUSED');

      const again = await startSmtpServer({ port: first.port });
      try {
        await transport.send(mail);
        const received = await again.waitForMail((parsed) => parsed.subject === mail.subject);
        expect(received.messageId).toBe(`<${mail.id}@acme.test>`);
      } finally {
        await again.stop();
      }
    } finally {
      await transport.close();
    }
  });

  it('gives up on a server that accepts the connection but never answers', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const transport = smtpTransport(`smtp://127.0.0.1:${(silent.address() as { port: number }).port}`);
    try {
      // The greeting timeout is about ten seconds; the test's own limit (30 s) is the "forever".
      const hung = await transport.send(outgoing()).catch((error: unknown) => error);
      expect(hung).toMatchObject({ name: 'MailSendError', code: 'ETIMEDOUT', permanent: false });
    } finally {
      await transport.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('refuses a mail id that could not be a Message-ID or file name', async () => {
    const server = await startSmtpServer();
    const transport = smtpTransport(server.url);
    try {
      await expect(transport.send(outgoing({ id: '../x>' }))).rejects.toThrow('must be letters, digits');
    } finally {
      await transport.close();
      await server.stop();
    }
  });
});

describe('the test SMTP server', () => {
  it('frees its port on stop even while a client is connected, and starts again on it', async () => {
    const server = await startSmtpServer();
    const client = createConnection(server.port, '127.0.0.1');
    await new Promise((resolve) => client.once('data', resolve)); // the greeting: the session is open
    const closed = new Promise((resolve) => client.once('close', resolve));
    await server.stop();
    await closed;
    const again = await startSmtpServer({ port: server.port });
    expect(again.port).toBe(server.port);
    await again.stop();
  });
});

describe('parseSmtpUrl', () => {
  it('accepts smtp and smtps URLs with optional port and credentials', () => {
    for (const url of [
      'smtp://mail.example.com',
      'smtps://user:p%40ss@mail.example.com:465',
      'smtp://u@[::1]:2525',
      'smtp://mail.example.com:587/?requireTLS=true',
    ]) {
      expect(parseSmtpUrl(url), url).toBeUndefined();
    }
  });

  it('names the problem without repeating the password', () => {
    const cases: [string, string][] = [
      ['mail.example.com:25', 'must start with smtp:// or smtps://'],
      ['user:s3cret@mail.example.com', 'must start with smtp:// or smtps://'],
      ['http://mail.example.com', 'must start with smtp:// or smtps://'],
      ['smtp://', 'has no host'],
      ['smtp://user:s3cret@mail.example.com/path', 'must not have a path'],
      ['smtp://user:s3cret@mail.example.com?pool=true', 'only the query parameter requireTLS'],
      ['smtp://user:s3c%ZZret@mail.example.com', 'not valid percent-encoding'],
      ['smtp://:s3cret@mail.example.com', 'password but no user name'],
      ['smtp://mail.example.com:0', 'port 0'],
      ['smtp://mail.example.com:99999', 'not a valid URL'],
    ];
    for (const [url, problem] of cases) {
      const message = parseSmtpUrl(url);
      expect(message, url).toContain(problem);
      expect(message, url).not.toContain('s3c');
    }
  });
});

describe('developmentOutbox', () => {
  it('writes a private .eml file that parses to the mail, and logs one line with the link', async () => {
    const dir = path.join(scratch, 'outbox', 'nested');
    const lines: { line: string; fields: Record<string, unknown> }[] = [];
    const transport = developmentOutbox(dir, (line, fields) => lines.push({ line, fields }));
    const mail = outgoing({ link: 'https://id.acme.test/reset?token=dev-link' });
    await transport.send(mail);
    await transport.close();

    expect(transport.kind).toBe('development');
    const files = readdirSync(dir);
    expect(files).toHaveLength(1); // no temp file left behind
    const [name] = files;
    expect(name).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}-\\d{3}Z-${mail.id}\\.eml$`));
    const file = path.join(dir, name!);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    const parsed = await simpleParser(readFileSync(file));
    expect(parsed.subject).toBe(mail.subject);
    expect(parsed.text?.trim()).toBe(mail.text.trim());
    expect(parsed.html).toContain(`token=secret-${mail.id}`);
    expect(parsed.to).toMatchObject({ value: [{ address: 'alice@example.com' }] });
    expect(parsed.messageId).toBe(`<${mail.id}@acme.test>`);

    expect(lines).toEqual([
      {
        line: `mail to alice@example.com: "${mail.subject}" https://id.acme.test/reset?token=dev-link (${file})`,
        fields: { mailId: mail.id, to: 'alice@example.com', file },
      },
    ]);
  });

  it('logs no link for a mail without one', async () => {
    const dir = path.join(scratch, 'outbox-notice');
    const lines: string[] = [];
    const mail = outgoing({ subject: 'Your email address is being changed' });
    await developmentOutbox(dir, (line) => lines.push(line)).send(mail);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^mail to alice@example\.com: "Your email address is being changed" \(.*\.eml\)$/);
  });
});
