import { loadConfig } from '../config.js';
import { databaseBusyIn } from '../db/busy.js';
import { describeFailure, runAdminCommand, type Output } from './commands.js';

// Entry point of `npm run admin -- <command>`; the commands are in commands.ts.

const io: Output = { out: (line) => console.log(line), err: (line) => console.error(line) };
try {
  process.exitCode = await runAdminCommand(process.argv.slice(2), loadConfig(process.env), io);
} catch (error) {
  const busy = databaseBusyIn(error);
  // Prisma's wrapping adds a call site that means nothing to an operator. 75 (EX_TEMPFAIL): a script
  // may retry.
  const { message, code } = busy ? { message: busy.message, code: 75 } : describeFailure(error);
  io.err(message);
  process.exitCode = code;
}
