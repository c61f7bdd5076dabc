import { readFileSync } from 'node:fs';
import path from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { expect, it } from 'vitest';
import config from '../../client/codegen.js';

// client/generated/ is committed so the kit works without running codegen; it must be what
// `npm run client:generate` makes from the committed schema.graphql and client/operations.graphql today.

const root = path.resolve(import.meta.dirname, '../..');

it('client/generated/ matches schema.graphql and client/operations.graphql (run `npm run client:generate`)', async () => {
  const outputs = await generate({ ...config, cwd: root, silent: true }, false);
  expect(outputs.length).toBeGreaterThan(1);
  for (const { filename, content } of outputs) {
    const committed = readFileSync(path.resolve(root, filename), 'utf8');
    expect(committed, `${filename} is out of date`).toBe(content);
  }
}, 60_000);
