import type { Logger } from '../../src/logger.js';
import { createLogger } from '../../src/logger.js';

/** A logger (JSON lines, at `level` and above) whose lines the test can read, raw or parsed. */
export function capturingLogger(level = 'error'): { logger: Logger; lines: string[]; entries(): Record<string, unknown>[] } {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(line) });
  return { logger, lines, entries: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}
