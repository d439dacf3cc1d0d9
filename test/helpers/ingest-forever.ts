/**
 * A stand-alone spool ingester for crash tests:
 * `tsx ingest-forever.ts <spoolDir> <ledgerDir or URL> [deadLetterDir] [lines per batch]`.
 * Ingests every 20 ms in batches of 5 lines (or as given) until SIGTERM (clean stop) or SIGKILL;
 * with a dead-letter directory, lines that cannot be stored go there as in the controller.
 */
import { DeadLetterBox } from '../../src/spend/dead-letter.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { SpoolIngester } from '../../src/spend/ingest.js';
import { openLedger } from '../../src/store/migrate.js';

const [spoolDir, ledger, deadLetterDir, batchLines] = process.argv.slice(2);
const db = await openLedger(
  ledger!.startsWith('postgres') ? { url: ledger! } : { dataDir: ledger! },
);
const ingester = new SpoolIngester({
  db,
  spoolDir: spoolDir!,
  catalog: deploymentCatalog(undefined),
  intervalMs: 20,
  batchLines: batchLines ? Number(batchLines) : 5,
  ...(deadLetterDir && { deadLetters: new DeadLetterBox({ dir: deadLetterDir }) }),
});
ingester.start();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void ingester
    .stop()
    .then(() => db.close())
    .then(() => process.exit(0));
});
