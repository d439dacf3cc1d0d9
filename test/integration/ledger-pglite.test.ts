import { openDatabase } from '../../src/store/db.js';
import { ledgerReportSuite } from '../helpers/ledger-suite.js';

ledgerReportSuite('PGlite (embedded)', () => openDatabase({}));
