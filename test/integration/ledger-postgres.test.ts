import { afterAll } from 'vitest';
import { openDatabase } from '../../src/store/db.js';
import { ledgerReportSuite } from '../helpers/ledger-suite.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';

let cluster: PostgresCluster | undefined;
afterAll(() => cluster?.stop());

ledgerReportSuite('PostgreSQL (Debian package, throw-away cluster)', async () => {
  cluster = await startPostgres();
  return openDatabase({ url: cluster.url });
});
