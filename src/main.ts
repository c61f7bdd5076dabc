import { createApp } from './app.js';
import { type Config, ConfigError, loadConfig } from './config.js';
import { sqlitePath } from './db/client.js';
import { isPostgresUrl } from './db/migrate.js';
import { prepareDataFiles } from './db/data-files.js';
import { applyMigrations } from './db/migrate.js';
import { drainOnSignals } from './http/graceful-shutdown.js';
import { listenFirst } from './http/listen-first.js';
import { createLogger } from './logger.js';

// The process entry point: configuration, the port, migrations, then serve. Everything else is in createApp.

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }

  // The port first: a start that cannot listen fails before it writes anything (listen-first.ts).
  const { server, serve } = await listenFirst(config.http.port, config.http.host);
  // Folder 0700 and database file 0600 before the migration creates the file with the umask's mode.
  const logger = createLogger(config.logLevel);
  for (const warning of prepareDataFiles(config.databaseUrl, config.keysFile)) logger.warn({ event: 'startup_warning' }, warning);
  await applyMigrations(config.databaseUrl);
  const app = await createApp(config, { logger });
  // SIGTERM/SIGINT: stop accepting, let accepted requests finish, then close the database (graceful-shutdown.ts).
  const drain = drainOnSignals(server, {
    timeoutMs: config.shutdownTimeoutSeconds * 1000,
    close: () => app.close(),
    log: (line) => console.log(line),
  });
  serve(drain.guard(app.yoga));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  const shownHost = host === '127.0.0.1' || host === '0.0.0.0' || host === '[::]' ? 'localhost' : host;
  console.log(`Gatehouse listening on http://${host}:${port}`);
  // GraphiQL only when it is served (GRAPHIQL, off by default in production); the endpoint itself always.
  if (config.graphql.graphiql) console.log(`  GraphiQL:  http://${shownHost}:${port}${app.yoga.graphqlEndpoint}`);
  else console.log(`  GraphQL:   http://${shownHost}:${port}${app.yoga.graphqlEndpoint} (POST; GraphiQL off)`);
  console.log(`  JWKS:      http://${shownHost}:${port}/.well-known/jwks.json`);
  console.log(`  Database:  ${isPostgresUrl(config.databaseUrl) ? withoutPassword(config.databaseUrl) : sqlitePath(config.databaseUrl)}`);
  console.log(`  Keys:      ${config.keysFile}${app.keysCreated ? ' (created now; back this file up)' : ''}`);
  console.log(`  Mail:      ${describeMail(config)}`);
}

main().catch((error: unknown) => {
  console.error('Gatehouse failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});

/** A PostgreSQL URL fit for the console: the password, if any, replaced. */
function withoutPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.href;
}

/** Where mail goes, fit for the console (the SMTP password, if any, left out). */
function describeMail({ email }: Config): string {
  if (!email.enabled) return 'off (EMAIL_ENABLED=false)';
  if (email.smtpUrl === undefined) return `development outbox: ${email.developmentOutboxDir} and the log (set SMTP_URL to send)`;
  const smtp = new URL(email.smtpUrl);
  return `${smtp.protocol}//${smtp.host}, links to ${email.appUrl}`;
}
