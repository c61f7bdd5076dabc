import type { UserRole } from '../auth/accounts.js';
import { OPERATOR } from '../auth/admin-actor.js';
import { rotateSigningKeys } from '../auth/keys.js';
import { ConfigError, type Config } from '../config.js';
import { prepareDataFiles } from '../db/data-files.js';
import { applyMigrations } from '../db/migrate.js';
import { serviceFailureOf } from '../service-failures.js';
import { createServices } from '../services.js';
import { readPassword } from './read-password.js';

// The admin CLI's commands: what an operator does on the server's machine. It works on the same
// database and key file as the server (same environment variables), and may run while the server does.
// It acts as the OPERATOR, with no account behind it and no admin check: whoever can run it can read
// and write the database file and the key file anyway. (Changes through the API re-check their author
// inside their transaction instead; see auth/admin-actor.ts.)

const USAGE = `Usage: npm run admin -- <command>

  create-admin <username> [--email <address>]   create an administrator; the password is read from
                                                stdin (piped) or prompted for, never an argument
  set-role <username> <USER|ADMIN>              change a user's role
  disable <username>                            block login and end every session and API token
  enable <username>                             allow login again
  rotate-keys                                   start signing with a new key; old public keys stay
                                                in the JWKS until their tokens have expired. The key
                                                file keeps its owner and mode: run it as the server's
                                                user (or root)
  purge                                         delete ended sessions, API tokens, mailed links and old outbox records

Changes reach every running server's caches within a second (the change feed).`;

class UsageError extends Error {}

export type Output = { out: (line: string) => void; err: (line: string) => void };

export async function runAdminCommand(argv: readonly string[], config: Config, io: Output): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === 'help' || command === '--help') {
    io.out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'rotate-keys') {
    expectArgs(args, 0);
    const { kid, retired } = await rotateSigningKeys(config.keysFile, config.jwt, new Date());
    io.out(`New signing key ${kid} is current.${retired > 0 ? ` ${retired} expired key(s) removed.` : ''}`);
    io.out('Running servers switch to it within a few seconds; tokens signed before stay valid until they expire.');
    return 0;
  }

  // Like the server: a private folder and database file before the migration can create them (data-files.ts).
  for (const warning of prepareDataFiles(config.databaseUrl, config.keysFile)) io.err(`Warning: ${warning}`);
  await applyMigrations(config.databaseUrl);
  // The CLI checks no passwords and counts no requests: no Redis connection for the limits.
  const { services } = await createServices(config, undefined, { sharedLimits: false });
  try {
    switch (command) {
      case 'create-admin': {
        const [username, ...rest] = args;
        if (!username) throw new UsageError('create-admin needs a username.');
        const email = option(rest, '--email');
        const password = await readPassword(process.stdin, process.stderr);
        const user = await services.accounts.createUser({ username, password, email }, 'ADMIN', OPERATOR);
        io.out(`Administrator ${user.username} created (id ${user.id}).`);
        return 0;
      }
      case 'set-role': {
        expectArgs(args, 2);
        const role = args[1]!.toUpperCase();
        if (role !== 'USER' && role !== 'ADMIN') throw new UsageError('The role must be USER or ADMIN.');
        const user = await services.users.setRole((await services.users.findByUsername(args[0]!)).id, role as UserRole, OPERATOR);
        io.out(`${user.username} is now ${user.role}.`);
        return 0;
      }
      case 'disable': {
        expectArgs(args, 1);
        const user = await services.users.disable((await services.users.findByUsername(args[0]!)).id, OPERATOR);
        io.out(`${user.username} is disabled; their sessions and API tokens are revoked.`);
        return 0;
      }
      case 'enable': {
        expectArgs(args, 1);
        const user = await services.users.enable((await services.users.findByUsername(args[0]!)).id, OPERATOR);
        io.out(`${user.username} is enabled.`);
        return 0;
      }
      case 'purge': {
        expectArgs(args, 0);
        const { sessions, apiTokens, emailTokens, mails } = await services.users.purge();
        io.out(
          `Deleted ${sessions} ended session(s), ${apiTokens} expired or revoked API token(s), ${emailTokens} expired mailed link(s) and code(s), and ${mails} outbox record(s) older than 30 days.`,
        );
        return 0;
      }
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } finally {
    await services.db.close();
  }
}

function expectArgs(args: readonly string[], count: number): void {
  if (args.length !== count) throw new UsageError(`Expected ${count} argument(s), got ${args.length}.`);
}

function option(args: readonly string[], name: string): string | undefined {
  const index = args.indexOf(name);
  if (index === -1) {
    if (args.length > 0) throw new UsageError(`Unexpected argument "${args[0]}".`);
    return undefined;
  }
  const value = args[index + 1];
  if (!value) throw new UsageError(`${name} needs a value.`);
  return value;
}

export function describeFailure(error: unknown): { message: string; code: number } {
  if (error instanceof UsageError) return { message: `${error.message}\n\n${USAGE}`, code: 2 };
  if (error instanceof ConfigError) return { message: error.message, code: 1 };
  // What the error means comes from the shared table; only the wording for a terminal is here.
  const failure = serviceFailureOf(error);
  if (failure?.kind === 'expected' && failure.code === 'VALIDATION_FAILED') {
    return { message: `Invalid input:\n${failure.fieldErrors.map((e) => `  - ${e.field}: ${e.message}`).join('\n')}`, code: 1 };
  }
  if (failure?.kind === 'expected') return { message: failure.message, code: 1 };
  // The busy error's own message: Prisma's wrapping adds a call site that means nothing to an operator.
  // 75 (EX_TEMPFAIL): a script may retry.
  if (failure?.kind === 'service_unavailable') return { message: failure.detail, code: 75 };
  if (error instanceof Error) return { message: error.message, code: 1 };
  return { message: String(error), code: 1 };
}
