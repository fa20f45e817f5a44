/**
 * Runs the vitest suite, then prints the plain closing line `Tests: N passed, N failed, N skipped`
 * and keeps the per-test results in `.vitest-results.json` for the conformance report.
 * Extra arguments go to vitest (e.g. a path filter).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, '.vitest-results.json');
const vitest = join(root, 'node_modules/.bin/vitest');
const r = spawnSync(vitest, ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});
let summary = '';
if (existsSync(out)) {
  const j = JSON.parse(readFileSync(out, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number; numTodoTests: number };
  summary = `Tests: ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${j.numPendingTests + j.numTodoTests} skipped`;
}
if (summary) console.log(`\n${summary}`);
process.exit(r.status ?? 1);
