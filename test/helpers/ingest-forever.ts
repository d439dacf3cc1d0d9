/**
 * A stand-alone spool ingester for crash tests: `tsx ingest-forever.ts <spoolDir> <ledgerDir>`.
 * Ingests every 20 ms in batches of 5 lines until SIGTERM (clean stop) or SIGKILL.
 */
import { deploymentCatalog } from '../../src/spend/extract.js';
import { SpoolIngester } from '../../src/spend/ingest.js';
import { openLedger } from '../../src/store/migrate.js';

const [spoolDir, ledger] = process.argv.slice(2);
const db = await openLedger(
  ledger!.startsWith('postgres') ? { url: ledger! } : { dataDir: ledger! },
);
const ingester = new SpoolIngester({
  db,
  spoolDir: spoolDir!,
  catalog: deploymentCatalog(undefined),
  intervalMs: 20,
  batchLines: 5,
});
ingester.start();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void ingester
    .stop()
    .then(() => db.close())
    .then(() => process.exit(0));
});
