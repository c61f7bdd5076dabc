import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

// A link's token: 32 bytes of HMAC output, base64url.
const LINK_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const CODE_PATTERN = /^\d{6}$/;

/**
 * The secrets a mail carries (a link's token, a 6-digit code), derived from the token row's random id
 * under a key taken from the key file, never from the database.
 *
 * Why derived rather than random and stored: the mail is written to the outbox in the same transaction as
 * the token and sent later, possibly after a restart, by whichever instance takes it. A random secret
 * would have to wait in the outbox row in the clear. Derived, the outbox holds only the token's id, and
 * the sender recomputes the secret with the key. The database keeps only a SHA-256 of the link token (to
 * find the row) and a keyed hash of the code: a copy of the database alone yields no usable link or code.
 */
export class EmailSecrets {
  readonly #key: Buffer;

  /** `masterKey`: the refresh-token key from the key file; a separate key is derived from it. */
  constructor(masterKey: Buffer) {
    this.#key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'gatehouse email tokens', 32));
  }

  /** The token in the link of the mail for token row `tokenId`. */
  linkToken(tokenId: string): string {
    return this.#mac(`link\u0000${tokenId}`).toString('base64url');
  }

  /** What the database keeps to find the row of a presented link token. */
  linkTokenHash(linkToken: string): string {
    return createHash('sha256').update(linkToken).digest('hex');
  }

  /** Whether `value` can be a link token at all (checked before any database work). */
  isLinkTokenShaped(value: string): boolean {
    return LINK_TOKEN_PATTERN.test(value);
  }

  /** The 6-digit code of the mail for token row `tokenId`. */
  code(tokenId: string): string {
    // 2^32 mod 10^6 makes the low codes a few millionths likelier than the high ones: immaterial.
    return String(this.#mac(`code\u0000${tokenId}`).readUInt32BE(0) % 1_000_000).padStart(6, '0');
  }

  /** What the database keeps of a code. Keyed: a bare hash of six digits is reversed by trying a million. */
  codeHash(tokenId: string, code: string): string {
    return this.#mac(`code-hash\u0000${tokenId}\u0000${code}`).toString('hex');
  }

  /** Whether `code` is the one stored for the token, compared in constant time. */
  codeMatches(token: { readonly id: string; readonly codeHash: string | null }, code: string): boolean {
    if (token.codeHash === null || !CODE_PATTERN.test(code)) return false;
    const expected = Buffer.from(token.codeHash, 'hex');
    const presented = Buffer.from(this.codeHash(token.id, code), 'hex');
    return expected.length === presented.length && timingSafeEqual(expected, presented);
  }

  #mac(message: string): Buffer {
    return createHmac('sha256', this.#key).update(message).digest();
  }
}
