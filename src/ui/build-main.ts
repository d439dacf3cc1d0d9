/** `npm run build:ui`: builds the dashboard bundle into dist/ui/ (serve also builds it when stale). */
import { buildUi } from './bundle.js';

const { outDir, ms } = await buildUi();
process.stdout.write(`dashboard built into ${outDir} in ${ms} ms\n`);
