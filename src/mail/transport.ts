import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createTransport } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';

export interface OutgoingMail {
  /** Stable across retries: it names the Message-ID (and the development outbox's file). Letters, digits, '.', '_', '-'. */
  readonly id: string;
  readonly to: string;
  readonly from: string;
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  /** only for the development outbox's log line */
  readonly link?: string;
}

export interface MailTransport {
  readonly kind: 'smtp' | 'development';
  /** Resolves once the server accepted the message; rejects with a MailSendError otherwise. */
  send(mail: OutgoingMail): Promise<void>;
  close(): Promise<void>;
}

/**
 * Why a send failed. The message carries nodemailer's description and the server's reply, never the mail's body (which
 * holds the link and the code).
 */
export class MailSendError extends Error {
  override readonly name = 'MailSendError';
  constructor(
    message: string,
    /** nodemailer's code: ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE, EMESSAGE, ... */
    readonly code: string | undefined,
    /** The SMTP reply code, when the server answered with one. */
    readonly responseCode: number | undefined,
    /**
     * True when sending this same message again cannot succeed: the server refused the sender, a recipient or the
     * message with a 5xx reply, or the address could not even be put in an envelope. Connection failures, timeouts,
     * 4xx replies and authentication failures (a configuration problem that an operator can fix) are temporary.
     */
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

const TIMEOUT_MS = 10_000;
const MAIL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** nodemailer's options for `url` (smtp:// or smtps://, user:password URL-encoded), or the problem with it. */
function smtpOptions(
  url: string,
): { problem: string } | { host: string; port?: number; secure: boolean; requireTLS: boolean; auth?: { user: string; pass: string } } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Never echo the URL: it may hold the password.
    return { problem: 'is not a valid URL (expected smtp://user:password@host:port or smtps://...)' };
  }
  if (parsed.protocol !== 'smtp:' && parsed.protocol !== 'smtps:') return { problem: 'must start with smtp:// or smtps://' }; // not echoed: without a scheme, a user name may stand there
  if (parsed.hostname === '') return { problem: 'has no host' };
  if (parsed.pathname !== '' && parsed.pathname !== '/') return { problem: 'must not have a path' };
  if (parsed.hash !== '') return { problem: 'must not have a #fragment (percent-encode a "#" in the password as %23)' };
  // STARTTLS that an attacker on the path can strip would hand over the SMTP password and every link:
  // required by default, except to a relay on this machine (no network to strip it on).
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  let requireTLS = parsed.protocol === 'smtp:' && !isLoopback(host);
  for (const [name, value] of parsed.searchParams) {
    if (name !== 'requireTLS' || (value !== 'true' && value !== 'false')) return { problem: 'supports only the query parameter requireTLS=true|false' };
    requireTLS = value === 'true';
  }
  if (parsed.protocol === 'smtps:' && parsed.searchParams.get('requireTLS') === 'true')
    return { problem: 'requireTLS is for smtp:// (STARTTLS); smtps:// is always encrypted' };
  let user: string;
  let pass: string;
  try {
    user = decodeURIComponent(parsed.username);
    pass = decodeURIComponent(parsed.password);
  } catch {
    return { problem: 'has a user name or password that is not valid percent-encoding' };
  }
  if (user === '' && pass !== '') return { problem: 'has a password but no user name' };
  const port = parsed.port === '' ? undefined : Number(parsed.port);
  if (port === 0) return { problem: 'has port 0' };
  return {
    host,
    ...(port === undefined ? {} : { port }),
    secure: parsed.protocol === 'smtps:',
    requireTLS,
    ...(user === '' ? {} : { auth: { user, pass } }),
  };
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

/** The problem with an SMTP URL, for config validation, or undefined when it is usable. Never contains the password. */
export function parseSmtpUrl(url: string): string | undefined {
  const options = smtpOptions(url);
  return 'problem' in options ? `SMTP URL ${options.problem}` : undefined;
}

/**
 * Sends through an SMTP server: smtps:// is TLS from the start (port 465 by default), smtp:// upgrades with STARTTLS
 * (port 587 by default) and refuses a server that does not offer it, unless the host is this machine or the
 * URL says ?requireTLS=false (a relay on a private network the operator trusts). One
 * connection per message: mail here is rare and a pool would only hold idle connections that servers time out.
 */
export function smtpTransport(url: string): MailTransport {
  const options = smtpOptions(url);
  if ('problem' in options) throw new Error(`SMTP URL ${options.problem}`);
  const transporter = createTransport({
    ...options,
    port: options.port ?? (options.secure ? 465 : 587),
    // A server that accepts the connection and then says nothing must not hold a delivery forever.
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
    dnsTimeout: TIMEOUT_MS,
    // The message is our own text, but nodemailer must never read a file or fetch a URL while building it.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  return {
    kind: 'smtp',
    async send(mail) {
      try {
        await transporter.sendMail(messageOptions(mail));
      } catch (error) {
        throw sendError(error);
      }
    },
    async close() {
      transporter.close();
    },
  };
}

/**
 * For local development without SMTP: each mail becomes an .eml file in `dir` (open it in a mail client) and one log
 * line with the link in it, so a developer can follow the flow from the log. The link in the log is on purpose; this
 * transport must never be used where real users get mail.
 */
export function developmentOutbox(dir: string, log: (line: string, fields: Record<string, unknown>) => void): MailTransport {
  const builder = createTransport({ streamTransport: true, buffer: true, newline: 'windows', disableFileAccess: true, disableUrlAccess: true });
  return {
    kind: 'development',
    async send(mail) {
      const { message } = await builder.sendMail(messageOptions(mail));
      // The mails hold working links and codes: only the developer's own account may read them.
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = path.resolve(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${mail.id}.eml`);
      await writeAtomically(file, message as Buffer);
      const link = mail.link === undefined ? '' : ` ${mail.link}`;
      log(`mail to ${mail.to}: "${mail.subject}"${link} (${file})`, { mailId: mail.id, to: mail.to, file });
    },
    async close() {},
  };
}

function messageOptions(mail: OutgoingMail) {
  if (!MAIL_ID.test(mail.id)) throw new Error(`Mail id ${JSON.stringify(mail.id)} must be letters, digits, '.', '_' or '-'`);
  return {
    // The same id on every attempt: a receiver (or a person) can tell a retried message from a second one.
    messageId: `<${mail.id}@${messageIdDomain(mail.from)}>`,
    from: mail.from,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    // RFC 3834: keeps vacation responders and the like from answering an automated mail.
    headers: { 'Auto-Submitted': 'auto-generated' },
  };
}

/** The sender's domain, as mail servers expect a Message-ID's right side to be a domain name. */
function messageIdDomain(from: string): string {
  const [first] = addressparser(from, { flatten: true });
  const domain = first?.address.split('@')[1];
  return domain !== undefined && /^[A-Za-z0-9.-]+$/.test(domain) ? domain.toLowerCase() : 'gatehouse';
}

function sendError(error: unknown): MailSendError {
  const details = (typeof error === 'object' && error !== null ? error : {}) as { message?: unknown; code?: unknown; responseCode?: unknown };
  const code = typeof details.code === 'string' ? details.code : undefined;
  const responseCode = typeof details.responseCode === 'number' ? details.responseCode : undefined;
  const description = typeof details.message === 'string' ? details.message.slice(0, 500) : String(error).slice(0, 500);
  const rejected = responseCode !== undefined && responseCode >= 500 && responseCode < 600 && (code === 'EENVELOPE' || code === 'EMESSAGE');
  const unaddressable = code === 'EENVELOPE' && responseCode === undefined;
  // A new error rather than nodemailer's: nothing it might have attached (the envelope, the message) travels further.
  return new MailSendError(`SMTP send failed: ${description}`, code, responseCode, rejected || unaddressable);
}

/** Temp file + rename: a reader (a mail client, a test) never sees half a message. */
async function writeAtomically(file: string, content: Buffer): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID()}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}
