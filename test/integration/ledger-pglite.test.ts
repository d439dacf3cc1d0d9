import { openDatabase } from '../../src/store/db.js';
import { ledgerPoisonSuite, ledgerReportSuite } from '../helpers/ledger-suite.js';

ledgerReportSuite('PGlite (embedded)', () => openDatabase({}));
ledgerPoisonSuite('PGlite (embedded)', () => openDatabase({}));
