import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

// Belt and braces: no code path logs a secret on purpose, and these paths are censored even if one did.
const SECRET_PATHS = ['password', 'newPassword', 'currentPassword', 'passwordHash', 'token', 'accessToken', 'refreshToken', 'authorization', 'secretHash'];

/** JSON lines (pino) on stdout, or on `destination` (tests capture it). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'gatehouse' },
      redact: { paths: [...SECRET_PATHS, ...SECRET_PATHS.map((path) => `*.${path}`)], censor: '[redacted]' },
    },
    destination,
  );
}
