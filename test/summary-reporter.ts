import { appendFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints the line CI reads: `N passed, N failed` (vitest's own summary is not read by CI). With
 * MODELCENTER_TEST_SUMMARY set, also appends the two counts to that file, so .ci/run can print one
 * line for `npm test` and `npm run test:db` together.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
  ): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const module of testModules) {
      if (module.state() === 'failed' && [...module.children.allTests()].length === 0) failed += 1;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
      }
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
    const file = process.env.MODELCENTER_TEST_SUMMARY;
    if (file) appendFileSync(file, `${passed} ${failed}\n`);
  }
}
