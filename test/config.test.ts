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
      example
        .split('\n')
        .filter((line) => /^[A-Z0-9_]+=/.test(line))
        .map((line) => line.split('=', 2) as [string, string]),
    );
    expect(Object.keys(documented).sort()).toEqual([...environmentVariables].sort());
    expect(() => loadConfig(documented)).not.toThrow();
  });

  describe('refuses settings that pass their type but cannot work', () => {
    const problemsOf = (environment: Record<string, string>): string[] => {
      try {
        loadConfig(environment);
      } catch (error) {
        if (error instanceof ConfigError) return error.problems;
        throw error;
      }
      return [];
    };
    const refused = (environment: Record<string, string>, variable: string, wording?: RegExp) => {
      const problems = problemsOf(environment);
      expect(
        problems.some((problem) => problem.startsWith(`${variable}:`)),
        `${JSON.stringify(environment)} → ${problems.join(' | ')}`,
      ).toBe(true);
      if (wording) expect(problems.join('\n')).toMatch(wording);
    };

    it('argon2 below its own minimum (8 KiB per lane) or beyond its limits', () => {
      refused({ ARGON2_MEMORY_KIB: '1' }, 'ARGON2_MEMORY_KIB', /at least 8/);
      refused({ ARGON2_MEMORY_KIB: '15', ARGON2_PARALLELISM: '2' }, 'ARGON2_MEMORY_KIB', /16/);
      expect(problemsOf({ ARGON2_MEMORY_KIB: '16', ARGON2_PARALLELISM: '2' })).toEqual([]);
      expect(problemsOf({ ARGON2_MEMORY_KIB: '8', ARGON2_TIME_COST: '1' })).toEqual([]);
      refused({ ARGON2_MEMORY_KIB: String(2 ** 32) }, 'ARGON2_MEMORY_KIB');
      refused({ ARGON2_TIME_COST: String(2 ** 32) }, 'ARGON2_TIME_COST');
      refused({ ARGON2_PARALLELISM: String(2 ** 24) }, 'ARGON2_PARALLELISM');
      // More memory than any machine has, for the hashes that run at once.
      refused({ ARGON2_MEMORY_KIB: String(2 ** 32 - 1), ARGON2_CONCURRENCY: '1' }, 'ARGON2_MEMORY_KIB', /MiB/);
      refused({ ARGON2_MEMORY_KIB: '65536', ARGON2_TIME_COST: '100000' }, 'ARGON2_TIME_COST', /minutes/);
    });

    it('lifetimes that overflow or contradict each other', () => {
      refused({ SESSION_ABSOLUTE_LIFETIME_DAYS: '1e12' }, 'SESSION_ABSOLUTE_LIFETIME_DAYS');
      refused({ SESSION_IDLE_TIMEOUT_DAYS: '1e8', SESSION_ABSOLUTE_LIFETIME_DAYS: '1e8' }, 'SESSION_IDLE_TIMEOUT_DAYS');
      refused({ SESSION_IDLE_TIMEOUT_DAYS: '0.0001' }, 'SESSION_IDLE_TIMEOUT_DAYS', /ACCESS_TOKEN_TTL_SECONDS/);
      expect(problemsOf({ SESSION_IDLE_TIMEOUT_DAYS: '0.002', ACCESS_TOKEN_TTL_SECONDS: '60' })).toEqual([]);
      refused({ SESSION_IDLE_TIMEOUT_DAYS: '0.001', ACCESS_TOKEN_TTL_SECONDS: '60', REFRESH_REUSE_GRACE_SECONDS: '120' }, 'REFRESH_REUSE_GRACE_SECONDS');
      refused({ SESSION_IDLE_TIMEOUT_DAYS: '100' }, 'SESSION_IDLE_TIMEOUT_DAYS', /must not exceed/);
      refused({ LOCKOUT_BASE_SECONDS: '600', LOCKOUT_MAX_SECONDS: '60' }, 'LOCKOUT_BASE_SECONDS');
      refused({ LOCKOUT_MAX_SECONDS: '86400' }, 'LOCKOUT_MAX_SECONDS');
      refused({ LOCKOUT_MIN_SOURCES: '33' }, 'LOCKOUT_MIN_SOURCES');
    });

    it('SQLite URLs that would not hold the data: query strings, memory, no file', () => {
      for (const url of [
        'file:./x.db?mode=ro',
        'file:/srv/x.db?connection_limit=1',
        'file:/srv/x.db#main',
        'file::memory:',
        'file::memory:?cache=shared',
        'file:',
        'file:   ',
        'file://host/x.db',
        'file:/srv/data/',
        'mysql://localhost/x',
      ]) {
        refused({ DATABASE_URL: url }, 'DATABASE_URL');
      }
      expect(loadConfig({ DATABASE_URL: 'file:relative/x.db' }).databaseUrl).toBe('file:relative/x.db');
    });

    it('PostgreSQL URLs: well-formed ones select PostgreSQL, malformed ones are refused with the form to write', () => {
      for (const url of ['postgresql://postgres@127.0.0.1:5432/gatehouse', 'postgres://u:p%40ss@db.internal/gh?sslmode=require', 'POSTGRESQL://h/db']) {
        expect(problemsOf({ DATABASE_URL: url })).toEqual([]);
      }
      for (const url of [
        'postgresql://localhost',
        'postgresql://localhost/',
        'postgres:localhost/x',
        'postgresql:///x',
        'postgresql://h:99999/x',
        'postgresql://h/a/b',
        'postgresql://h/x#frag',
      ]) {
        refused({ DATABASE_URL: url }, 'DATABASE_URL', /postgresql:\/\/|port|fragment|URL/);
      }
    });

    it('rate limits whose window or budget cannot be kept, and maps too large to allocate', () => {
      refused({ RATE_LIMIT_LOGIN: '1/999999d' }, 'RATE_LIMIT_LOGIN', /30d/);
      refused({ RATE_LIMIT_REFRESH: '999999999/1m' }, 'RATE_LIMIT_REFRESH');
      expect(problemsOf({ RATE_LIMIT_REGISTER: '100000/30d' })).toEqual([]);
      refused({ RATE_LIMIT_MAX_KEYS: '1000000000' }, 'RATE_LIMIT_MAX_KEYS');
    });

    it('HOST and PORT nonsense', () => {
      for (const host of ['http://localhost', 'localhost:4000', '[::1]', 'my host', '-bad']) refused({ HOST: host }, 'HOST');
      for (const host of ['::', '::1', '0.0.0.0', 'localhost', 'gatehouse.internal']) expect(problemsOf({ HOST: host })).toEqual([]);
      for (const port of ['65536', '-1', '80.5', 'http']) refused({ PORT: port }, 'PORT');
    });

    it('limits so low that register, login or me itself is refused', () => {
      refused({ MAX_REQUEST_BODY_BYTES: '100' }, 'MAX_REQUEST_BODY_BYTES');
      refused({ GRAPHQL_MAX_DEPTH: '2' }, 'GRAPHQL_MAX_DEPTH');
      refused({ GRAPHQL_MAX_TOKENS: '50' }, 'GRAPHQL_MAX_TOKENS');
      refused({ GRAPHQL_MAX_COST: '10' }, 'GRAPHQL_MAX_COST');
    });

    it('reports every such problem at once, together with type errors', () => {
      const problems = problemsOf({
        PORT: 'eighty',
        ARGON2_MEMORY_KIB: '1',
        DATABASE_URL: 'file::memory:',
        LOCKOUT_BASE_SECONDS: '900',
        LOCKOUT_MAX_SECONDS: '30',
      });
      expect(problems.map((problem) => problem.split(':')[0]).sort()).toEqual(['ARGON2_MEMORY_KIB', 'DATABASE_URL', 'LOCKOUT_BASE_SECONDS', 'PORT']);
    });
  });
});
