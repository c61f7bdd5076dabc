import { createInterface } from 'node:readline';
import { Writable, type Readable } from 'node:stream';

/**
 * Reads a password without it ever being a command-line argument (which other users can see in `ps`
 * and shells keep in history): piped stdin is read whole, a terminal is prompted twice with echo off.
 */
export async function readPassword(input: Readable & { isTTY?: boolean }, output: Writable): Promise<string> {
  if (!input.isTTY) {
    let text = '';
    for await (const chunk of input) text += chunk;
    // One trailing newline belongs to `echo` or the file, not to the password.
    return text.replace(/\r?\n$/, '');
  }
  const first = await promptHidden(input, output, 'Password: ');
  const second = await promptHidden(input, output, 'Repeat password: ');
  if (first !== second) throw new Error('The passwords do not match.');
  return first;
}

function promptHidden(input: Readable, output: Writable, question: string): Promise<string> {
  output.write(question);
  // readline echoes what is typed to its output; give it one that swallows everything.
  const muted = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const rl = createInterface({ input, output: muted, terminal: true });
  return new Promise((resolve) => {
    rl.question('', (answer) => {
      rl.close();
      output.write('\n');
      resolve(answer);
    });
  });
}
