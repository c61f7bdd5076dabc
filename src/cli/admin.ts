import { loadConfig } from '../config.js';
import { describeFailure, runAdminCommand, type Output } from './commands.js';

// Entry point of `npm run admin -- <command>`; the commands are in commands.ts.

const io: Output = { out: (line) => console.log(line), err: (line) => console.error(line) };
try {
  process.exitCode = await runAdminCommand(process.argv.slice(2), loadConfig(process.env), io);
} catch (error) {
  const { message, code } = describeFailure(error);
  io.err(message);
  process.exitCode = code;
}
