/**
 * Fails when the committed generated protobuf code differs from what `buf generate` makes now
 * (stale generated code must never land).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = mkdtempSync(join(tmpdir(), 'divs-gen-'));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

try {
  execFileSync(join(root, 'node_modules/.bin/buf'), ['generate', '-o', out], { cwd: root, stdio: 'inherit' });
  const fresh = join(out, 'proto/gen');
  const committed = join(root, 'proto/gen');
  const a = files(fresh).map((f) => relative(fresh, f)).sort();
  const b = files(committed).map((f) => relative(committed, f)).sort();
  const stale = [...new Set([...a, ...b])].filter(
    (f) => !a.includes(f) || !b.includes(f) || !readFileSync(join(fresh, f)).equals(readFileSync(join(committed, f))),
  );
  if (stale.length > 0) {
    console.error(`generated code is stale; run 'npm run generate' and commit:\n  ${stale.join('\n  ')}`);
    process.exit(1);
  }
  console.log(`generated code is fresh (${a.length} files)`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
