import { createServer } from 'node:http';
import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { applyMigrations } from './db/migrate.js';
import { sqlitePath } from './db/client.js';

// The process entry point: configuration, migrations, then listen. Everything else is in createApp.

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }

  await applyMigrations(config.databaseUrl);
  const app = await createApp(config);
  const server = createServer(app.yoga);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const host = config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host;
  const shownHost = host === '127.0.0.1' || host === '0.0.0.0' || host === '[::]' ? 'localhost' : host;
  console.log(`Gatehouse listening on http://${host}:${port}`);
  console.log(`  GraphiQL:  http://${shownHost}:${port}${app.yoga.graphqlEndpoint}`);
  console.log(`  JWKS:      http://${shownHost}:${port}/.well-known/jwks.json`);
  console.log(`  Database:  ${sqlitePath(config.databaseUrl)}`);
  console.log(`  Keys:      ${config.keysFile}${app.keysCreated ? ' (created now; back this file up)' : ''}`);

  const shutdown = () => {
    server.close(() => void app.close().then(() => process.exit(0)));
    // Open keep-alive connections would hold close() forever.
    server.closeAllConnections();
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((error: unknown) => {
  console.error('Gatehouse failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
