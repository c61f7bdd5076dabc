/** A write broke a unique index (a username or email already taken), whatever the engine said. */
export class UniqueConstraintError extends Error {
  constructor(options?: ErrorOptions) {
    super('a unique constraint refused the write', options);
  }
}

/** Prisma's unique-constraint code, the same on every engine it supports. */
export function isPrismaUniqueViolation(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'P2002';
}

/** Prisma's "record to update or delete does not exist": the row went in a race. */
export function isPrismaRecordGone(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'P2025';
}

/** Rethrows a unique violation as UniqueConstraintError; anything else as it came. */
export function translateUniqueViolation(error: unknown): never {
  if (isPrismaUniqueViolation(error)) throw new UniqueConstraintError({ cause: error });
  throw error;
}
