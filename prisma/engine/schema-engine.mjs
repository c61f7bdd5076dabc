#!/usr/bin/env node
// Stand-in for Prisma's native `schema-engine` binary, which the CLI downloads from a host these machines
// cannot reach. prisma.config.ts points PRISMA_SCHEMA_ENGINE_BINARY here. We speak the binary's protocol
// and forward every call to the same engine compiled to WebAssembly (@prisma/schema-engine-wasm), which
// reaches the database through a Prisma driver adapter. See /work/shared/docs/prisma-offline.md.
//
// How the CLI (prisma 7.10) starts us, always with cwd = the folder of prisma.config.ts:
//   --version                                      print the version, exit
//   --datasource '{"url":…}' cli <command>         one-shot: can-connect-to-database | create-database |
//                                                  drop-database; errors as JSON log lines on stderr
//   --datamodels <file>… --datasource '{"url":…,"shadowDatabaseUrl"?:…}'
//                                                  JSON-RPC 2.0 server, one message per line on stdin/stdout
// The protocol is version-specific: prisma, the adapters and the wasm engine are pinned exactly.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  options: {
    version: { type: 'boolean', short: 'V' },
    datamodels: { type: 'string', multiple: true },
    datasource: { type: 'string' },
  },
  // The CLI may add --enabled-preview-features / --extension-types; the wasm engine has no use for them.
  strict: false,
  allowPositionals: true,
});
const datasource = typeof args.datasource === 'string' ? JSON.parse(args.datasource) : {};
const url = String(datasource.url ?? '');
const isSqlite = url.startsWith('file:');

/** Log lines in the native engine's format: the CLI parses stderr as JSON and looks at `fields`. */
function log(level, message, extra = {}) {
  process.stderr.write(JSON.stringify({ timestamp: new Date().toISOString(), level, fields: { message, ...extra }, target: 'schema_engine::logger' }) + '\n');
}

/** `file:./dev.db?connection_limit=1` → absolute path, relative to our cwd as the native engine does. */
function sqliteFile(sqliteUrl) {
  let file = sqliteUrl.slice('file:'.length).replace(/[?#].*$/, '');
  if (file.startsWith('//')) file = new URL(sqliteUrl).pathname;
  return path.resolve(file);
}

class EngineError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// --- Wasm engine --------------------------------------------------------------------------------------

// A Rust panic in the engine reports its message here before trapping (as in Prisma's own CLI).
const panic = { message: '', set_message(message) { this.message = message; } };
globalThis.PRISMA_WASM_PANIC_REGISTRY = panic;

let wasmModule;
async function loadWasm() {
  if (wasmModule) return wasmModule;
  // The package's entry imports the .wasm as an ES module, which plain Node cannot do: instantiate by hand.
  const glueUrl = import.meta.resolve('@prisma/schema-engine-wasm/schema_engine_bg');
  const glue = await import(glueUrl);
  const bytes = await readFile(new URL('schema_engine_bg.wasm', glueUrl));
  const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': glue });
  glue.__wbg_set_wasm(instance.exports);
  instance.exports.__wbindgen_start();
  return (wasmModule = glue);
}

const openAdapters = new Set();

/** better-sqlite3 prepares exactly one statement, but the engine replays whole migration scripts (or
 *  comment-only ones) on the shadow database through executeRaw: P3006 "failed to apply cleanly". */
function withScriptFallback(adapter) {
  openAdapters.add(adapter);
  const executeRaw = adapter.executeRaw.bind(adapter);
  adapter.executeRaw = async (query) => {
    try {
      return await executeRaw(query);
    } catch (error) {
      if (query.args.length > 0 || !/more than one statement|contains no statements/.test(String(error?.message))) throw error;
      await adapter.executeScript(query.sql);
      return 0;
    }
  };
  return adapter;
}

async function createAdapterFactory() {
  const { bindMigrationAwareSqlAdapterFactory } = await import('@prisma/driver-adapter-utils');
  let factory;
  if (isSqlite) {
    const { PrismaBetterSqlite3 } = await import('@prisma/adapter-better-sqlite3');
    // No shadowDatabaseUrl: the engine replays the history more than once per command and would find a
    // shadow file already migrated. The adapter's default, a fresh in-memory database, is always empty.
    const sqlite = new PrismaBetterSqlite3({ url: `file:${sqliteFile(url)}` });
    factory = {
      provider: sqlite.provider,
      adapterName: sqlite.adapterName,
      connect: async () => lazily(sqlite),
      connectToShadowDb: () => sqlite.connectToShadowDb(),
    };
  } else if (/^postgres(ql)?:/.test(url)) {
    factory = await createPostgresFactory();
  } else {
    throw new EngineError('P1013', `The engine stand-in supports SQLite (file:) and PostgreSQL URLs only.`);
  }
  // The engine only accepts migration-aware factories: it needs a shadow database for migrate dev/diff.
  return bindMigrationAwareSqlAdapterFactory({
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => withScriptFallback(await factory.connect()),
    connectToShadowDb: async () => withScriptFallback(await factory.connectToShadowDb()),
  });
}

/** The engine connects to the main database as soon as it starts, but `migrate diff` may never use it:
 *  open the SQLite file on first use, so a diff neither creates an empty file nor fails on a missing
 *  folder. (node-postgres pools connect lazily already.) */
function lazily(factory) {
  let adapter;
  const get = () => (adapter ??= factory.connect());
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    queryRaw: async (query) => (await get()).queryRaw(query),
    executeRaw: async (query) => (await get()).executeRaw(query),
    executeScript: async (script) => (await get()).executeScript(script),
    startTransaction: async (isolationLevel) => (await get()).startTransaction(isolationLevel),
    dispose: async () => (adapter ? (await adapter).dispose() : undefined),
  };
}

/** PostgreSQL: loaded only for postgres URLs, so SQLite works without @prisma/adapter-pg and pg installed. */
async function createPostgresFactory() {
  const { PrismaPg } = await import('@prisma/adapter-pg');
  const schema = new URL(url).searchParams.get('schema') ?? undefined;
  const factory = new PrismaPg({ connectionString: url }, { schema });
  const connect = async (connectionString) => withCharAsText(await new PrismaPg({ connectionString }, { schema }).connect());
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: () => connect(url),
    // The adapter's own shadow database is broken: node-postgres ignores its `database` override next to
    // a connectionString (so it migrates the main database), and it drops the database before closing
    // the pool on it. Use the configured one, or create and drop a temporary one (needs CREATEDB).
    connectToShadowDb: async () => {
      if (datasource.shadowDatabaseUrl) {
        // The engine replays the history on it more than once per command: empty it every time.
        const shadow = await connect(datasource.shadowDatabaseUrl);
        const name = `"${(schema ?? 'public').replaceAll('"', '""')}"`;
        await shadow.executeScript(`DROP SCHEMA IF EXISTS ${name} CASCADE; CREATE SCHEMA ${name}`);
        return shadow;
      }
      const name = `prisma_migrate_shadow_db_${crypto.randomUUID()}`;
      const admin = await connect(url);
      await admin.executeScript(`CREATE DATABASE "${name}"`);
      const shadowUrl = new URL(url);
      shadowUrl.pathname = `/${name}`;
      const shadow = await connect(shadowUrl.href);
      const dispose = shadow.dispose.bind(shadow);
      shadow.dispose = async () => {
        await dispose();
        await admin.executeScript(`DROP DATABASE IF EXISTS "${name}"`);
        await admin.dispose();
      };
      return shadow;
    },
  };
}

/** adapter-pg has no column type for PostgreSQL's internal "char" (OID 18, e.g. pg_constraint.contype),
 *  which the engine reads while describing a schema: "could not be deserialized". It is text. */
function withCharAsText(queryable) {
  const performIO = queryable.performIO.bind(queryable);
  queryable.performIO = async (query) => {
    const result = await performIO(query);
    for (const field of result?.fields ?? []) if (field.dataTypeID === 18) field.dataTypeID = 25;
    return result;
  };
  if (queryable.startTransaction) {
    const startTransaction = queryable.startTransaction.bind(queryable);
    queryable.startTransaction = async (isolationLevel) => withCharAsText(await startTransaction(isolationLevel));
  }
  return queryable;
}

let engine;
async function getEngine() {
  if (engine) return engine;
  const { SchemaEngine } = await loadWasm();
  // Commands without a schema (migrate diff) start us without --datamodels; an empty list panics the engine.
  const files = args.datamodels ?? [];
  const datamodels = files.length > 0 ? await Promise.all(files.map(async (file) => [file, await readFile(file, 'utf8')])) : undefined;
  // The wasm engine logs JSON lines in the native format already; the CLI reads them from stderr.
  const onLog = (line) => process.stderr.write(line.endsWith('\n') ? line : line + '\n');
  return (engine = await SchemaEngine.new({ datamodels }, onLog, await createAdapterFactory()));
}

async function closeEngine() {
  engine?.free();
  engine = undefined;
  await Promise.allSettled([...openAdapters].map((adapter) => adapter.dispose()));
  openAdapters.clear();
}

// --- JSON-RPC methods ---------------------------------------------------------------------------------

const isShadowFactoryError = (error) => /shadow DB must be provided through an external factory/.test(String(error?.message));
const isMissingMigrationsTable = (error) => error?.code === 'P1014';

/** Reported on this engine (prisma-offline.md, pitfall 2): evaluateDataLoss/createMigration fail on a
 *  fresh database with pending migrations until a diagnosis with the shadow database has run in the
 *  process. CLI 7.10.1 always calls devDiagnostic first, which does that; this covers other orders. */
async function withShadowDatabase(method, params) {
  const e = await getEngine();
  try {
    return await e[method](params);
  } catch (error) {
    if (!isShadowFactoryError(error)) throw error;
    await e.diagnoseMigrationHistory({ migrationsList: params.migrationsList, filters: params.filters, optInToShadowDatabase: true });
    return e[method](params);
  }
}

/** The wasm engine answers P1014 where the native one treats a missing _prisma_migrations table as an
 *  empty history. Applying an empty migration list creates the table (and fails with P3005 on a
 *  database that has tables but no migration history, as the native engine would for migrate dev). */
async function createMigrationsTable(e, params) {
  await e.applyMigrations({ migrationsList: { ...params.migrationsList, migrationDirectories: [] }, filters: params.filters });
}

// Exactly what the engine itself creates on SQLite (copied from a database it migrated).
const SQLITE_MIGRATIONS_TABLE = `CREATE TABLE "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

const passThrough = new Set([
  'applyMigrations', 'dbExecute', 'debugPanic', 'ensureConnectionValidity', 'introspect', 'introspectSql',
  'markMigrationRolledBack', 'schemaPush',
]);

async function dispatch(method, params) {
  switch (method) {
    case 'devDiagnostic': {
      const e = await getEngine();
      try {
        return await e.devDiagnostic(params);
      } catch (error) {
        if (!isMissingMigrationsTable(error)) throw error;
        try {
          await createMigrationsTable(e, params);
        } catch (applyError) {
          // Tables but no migration history: the native engine reports drift, and the CLI offers a reset.
          if (applyError?.code !== 'P3005') throw applyError;
          return { action: { tag: 'reset', reason: 'Drift detected: the database has tables but no migration history (no _prisma_migrations table).' } };
        }
        return e.devDiagnostic(params);
      }
    }
    case 'markMigrationApplied': {
      const e = await getEngine();
      try {
        return await e.markMigrationApplied(params);
      } catch (error) {
        // Baselining an existing database (`migrate resolve --applied`) must create the history table.
        if (!isMissingMigrationsTable(error) || !isSqlite) throw error;
        await e.dbExecute({ datasourceType: { tag: 'url', url }, script: SQLITE_MIGRATIONS_TABLE });
        return e.markMigrationApplied(params);
      }
    }
    case 'diagnoseMigrationHistory': {
      const e = await getEngine();
      try {
        return await e.diagnoseMigrationHistory(params);
      } catch (error) {
        if (!isMissingMigrationsTable(error)) throw error;
        // What the native engine reports without a migrations table (migrate status must not write).
        const names = params.migrationsList.migrationDirectories.map((d) => d.path);
        return {
          editedMigrationNames: [],
          failedMigrationNames: [],
          hasMigrationsTable: false,
          history: names.length > 0 ? { diagnostic: 'databaseIsBehind', unappliedMigrationNames: names } : null,
        };
      }
    }
    case 'evaluateDataLoss':
    case 'createMigration':
      return withShadowDatabase(method, params);
    case 'diff': {
      const result = await (await getEngine()).diff(params);
      // The native engine prints the diff through a `print` request to the CLI and returns no stdout;
      // the CLI ignores the returned text (and captures the printed one for --output).
      if (result.stdout) await requestFromCli('print', { content: result.stdout.replace(/\n$/, '') });
      return { exitCode: result.exitCode, stdout: null };
    }
    case 'reset':
      // The wasm engine empties SQLite tables but keeps them; the native one deletes the file.
      if (!isSqlite) return (await getEngine()).reset(params);
      await closeEngine();
      await deleteSqliteDatabase();
      return null;
    case 'getDatabaseVersion':
      return (await getEngine()).version(params);
    case 'createDatabase':
      return { databaseName: await createDatabase() };
    default:
      if (!passThrough.has(method)) throw Object.assign(new Error(`Method not found: ${method}`), { rpcCode: -32601 });
      return (await getEngine())[method](params);
  }
}

// --- Database lifecycle: the `cli` commands and reset ------------------------------------------------

async function canConnect() {
  if (!isSqlite) {
    // Through the adapter rather than the engine, whose error for a missing database has no code: the CLI
    // needs P1003 to offer creating it.
    const { PrismaPg } = await import('@prisma/adapter-pg');
    const adapter = await new PrismaPg({ connectionString: url }).connect();
    try {
      await adapter.queryRaw({ sql: 'SELECT 1', args: [], argTypes: [] });
    } catch (error) {
      if (error?.cause?.kind === 'DatabaseDoesNotExist') throw new EngineError('P1003', `Database \`${error.cause.db}\` does not exist`);
      throw error;
    } finally {
      await adapter.dispose();
    }
    return;
  }
  const file = sqliteFile(url);
  if (!existsSync(file)) throw new EngineError('P1003', `Database \`${path.basename(file)}\` does not exist at \`${file}\``);
}

async function createDatabase() {
  if (!isSqlite) {
    const { PrismaPg } = await import('@prisma/adapter-pg');
    const maintenance = new URL(url);
    const name = decodeURIComponent(maintenance.pathname.slice(1));
    maintenance.pathname = '/postgres';
    const admin = await new PrismaPg({ connectionString: maintenance.href }).connect();
    try {
      await admin.executeScript(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    } finally {
      await admin.dispose();
    }
    return name;
  }
  const file = sqliteFile(url);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, '', { flag: 'a' });
  return path.basename(file);
}

async function deleteSqliteDatabase() {
  const file = sqliteFile(url);
  await Promise.all(['', '-journal', '-wal', '-shm'].map((suffix) => rm(file + suffix, { force: true })));
}

async function runCliCommand(command) {
  // The CLI drops the first stderr line before parsing the rest as JSON log lines.
  log('INFO', `Starting schema engine CLI: ${command}`);
  try {
    if (command === 'can-connect-to-database') await canConnect();
    else if (command === 'create-database') await createDatabase();
    else if (command === 'drop-database' && isSqlite) await deleteSqliteDatabase();
    else throw new Error(`Unsupported command: cli ${command}`);
    return 0;
  } catch (error) {
    log('ERROR', error?.message ?? String(error), { error_code: error?.code });
    return 1;
  }
}

// --- JSON-RPC transport ---------------------------------------------------------------------------------

function send(message) {
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', ...message }) + '\n');
}

let nextOutgoingId = 1;
const outgoing = new Map();
function requestFromCli(method, params) {
  const id = nextOutgoingId++;
  return new Promise((resolve) => {
    outgoing.set(id, resolve);
    send({ id, method, params });
  });
}

/** The native engine's error shape: the CLI reads data.message, data.error_code and data.is_panic. */
function toRpcError(error) {
  if (error?.rpcCode) return { code: error.rpcCode, message: error.message };
  const isPanic = error instanceof WebAssembly.RuntimeError;
  const message = (isPanic && panic.message) || (error?.message ?? String(error));
  const code = typeof error?.code === 'string' && /^P\d{4}$/.test(error.code) ? error.code : undefined;
  // For a panic the CLI shows the top-level message.
  const summary = isPanic ? message : 'An error happened. Check the data field for details.';
  return { code: 4466, message: summary, data: { is_panic: isPanic, message, meta: error?.meta ?? null, error_code: code } };
}

let currentRequestId;

function serve() {
  // A panic inside one of the engine's async callbacks surfaces as an uncaught trap, not as a rejection:
  // answer the request in flight, then exit like a panicking binary.
  process.on('uncaughtException', (error) => {
    const rpcError = toRpcError(error instanceof WebAssembly.RuntimeError ? error : new WebAssembly.RuntimeError(error?.stack ?? String(error)));
    log('ERROR', rpcError.data.message);
    if (currentRequestId !== undefined) send({ id: currentRequestId, error: rpcError });
    process.exit(101);
  });
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      send({ id: null, error: { code: -32700, message: 'Parse error' } });
      return;
    }
    if (message.method === undefined) {
      // The CLI's answer to one of our own requests (`print`).
      outgoing.get(message.id)?.(message);
      outgoing.delete(message.id);
      return;
    }
    // One call at a time, in order: the wasm engine is not re-entrant.
    queue = queue.then(async () => {
      currentRequestId = message.id;
      try {
        send({ id: message.id, result: (await dispatch(message.method, message.params ?? {})) ?? null });
      } catch (error) {
        log('ERROR', error?.message ?? String(error));
        send({ id: message.id, error: toRpcError(error) });
      }
      currentRequestId = undefined;
    });
  });
  // The CLI ends a session by closing our stdin. Exit explicitly: the wasm engine may keep timers alive.
  lines.on('close', () => {
    void queue.then(closeEngine).finally(() => process.exit(0));
  });
}

if (args.version) {
  const { version } = await loadWasm();
  process.stdout.write(`schema-engine-cli ${version()} (@prisma/schema-engine-wasm stand-in)\n`);
} else if (positionals[0] === 'cli') {
  process.exit(await runCliCommand(positionals[1]));
} else {
  serve();
}
