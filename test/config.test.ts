import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, environmentVariables, loadConfig } from '../src/config.js';

describe('config', () => {
  it('needs nothing for the default set-up', () => {
    const config = loadConfig({});
    expect(config.http).toEqual({ host: '127.0.0.1', port: 4000, trustProxy: false });
    expect(config.databaseUrl).toBe(`file:${path.resolve('data', 'gatehouse.db')}`);
    expect(config.argon2).toMatchObject({ memoryKiB: 19456, timeCost: 2, parallelism: 1 });
    expect(config.jwt.accessTokenTtlSeconds).toBe(900);
    expect(config.sessions.reuseGraceMs).toBe(10_000);
    expect(config.rateLimits.rules.login).toEqual({ max: 30, windowMs: 300_000 });
    expect(Object.isFrozen(config) && Object.isFrozen(config.rateLimits.rules.login)).toBe(true);
  });

  it('honours PORT, HOST, DATA_DIR and DATABASE_URL', () => {
    const config = loadConfig({ PORT: '8080', HOST: '0.0.0.0', DATA_DIR: '/tmp/gh', TRUST_PROXY: 'true' });
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080, trustProxy: true });
    expect(config.databaseUrl).toBe('file:/tmp/gh/gatehouse.db');
    expect(config.keysFile).toBe('/tmp/gh/keys.json');
    expect(loadConfig({ DATABASE_URL: 'file:/srv/x.db' }).databaseUrl).toBe('file:/srv/x.db');
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'eighty', JWT_SECRET: 'short', RATE_LIMIT_LOGIN: '5 per minute', TRUST_PROXY: 'maybe' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of ['PORT', 'JWT_SECRET', 'RATE_LIMIT_LOGIN', 'TRUST_PROXY']) expect(problems).toContain(name);
    expect((error as ConfigError).problems).toHaveLength(4);
  });

  it('refuses argon2 settings below OWASP in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', ARGON2_MEMORY_KIB: '1024' })).toThrow(/ARGON2_MEMORY_KIB/);
    expect(loadConfig({ NODE_ENV: 'test', ARGON2_MEMORY_KIB: '1024' }).argon2.memoryKiB).toBe(1024);
  });

  it('hashes one password per core and leaves a thread-pool thread free, unless told otherwise', () => {
    const cores = os.availableParallelism();
    expect(loadConfig({}).argon2.concurrency).toBe(Math.max(1, Math.min(cores, 3)));
    expect(loadConfig({ UV_THREADPOOL_SIZE: '2' }).argon2.concurrency).toBe(1);
    expect(loadConfig({ UV_THREADPOOL_SIZE: '0' }).argon2.concurrency).toBe(1);
    expect(loadConfig({ UV_THREADPOOL_SIZE: '64' }).argon2.concurrency).toBe(cores);
    expect(loadConfig({ ARGON2_CONCURRENCY: '7' }).argon2.concurrency).toBe(7);
    expect(() => loadConfig({ ARGON2_CONCURRENCY: '0' })).toThrow(/ARGON2_CONCURRENCY/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', JWT_SECRET: '' }).http.port).toBe(4000);
  });

  it('documents every variable in .env.example, and .env.example parses', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    const documented = Object.fromEntries(
      example.split('\n').filter((line) => /^[A-Z0-9_]+=/.test(line)).map((line) => line.split('=', 2) as [string, string]),
    );
    expect(Object.keys(documented).sort()).toEqual([...environmentVariables].sort());
    expect(() => loadConfig(documented)).not.toThrow();
  });
});
