import { afterAll } from 'vitest';
import { openDatabase, type Database } from '../../src/store/db.js';
import { ledgerPoisonSuite, ledgerReportSuite } from '../helpers/ledger-suite.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';

let cluster: Promise<PostgresCluster> | undefined;
afterAll(async () => (await cluster)?.stop());

/** One throw-away cluster for both suites; each suite opens its own connection pool. */
async function open(): Promise<Database> {
  cluster ??= startPostgres();
  return openDatabase({ url: (await cluster).url });
}

ledgerReportSuite('PostgreSQL (Debian package, throw-away cluster)', open);
ledgerPoisonSuite('PostgreSQL (Debian package, throw-away cluster)', open);
