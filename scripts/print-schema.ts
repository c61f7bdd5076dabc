import { writeFileSync } from 'node:fs';
import { schemaSdl } from '../src/schema/sdl.js';

// Regenerates schema.graphql from the Pothos schema; test/schema.test.ts fails when they differ.
writeFileSync(new URL('../schema.graphql', import.meta.url), schemaSdl());
console.log('schema.graphql written');
