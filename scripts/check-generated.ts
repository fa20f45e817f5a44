/**
 * @module check-generated
 * Fails when a committed generated artefact differs from what its generator makes now (stale
 * generated files must never land):
 * - the ts-proto code in `proto/gen/` against `buf generate` (fix: `npm run generate`);
 * - the API reference `docs/api.md` against `scripts/gen-api-docs.ts` (fix: `npm run docs:api`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { API_DOC_PATH, renderApiDocs } from './gen-api-docs.ts';

const root = new URL('..', import.meta.url).pathname;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

/** Regenerates the ts-proto code in a temporary folder and compares; true when fresh. */
function checkProtoGen(): boolean {
  const out = mkdtempSync(join(tmpdir(), 'divs-gen-'));
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
      return false;
    }
    console.log(`generated code is fresh (${a.length} files)`);
    return true;
  } finally {
    // cleaned up on success and failure alike (no process.exit inside the try)
    rmSync(out, { recursive: true, force: true });
  }
}

/** Renders the API reference in memory and compares it with the committed file; true when fresh. */
function checkApiDocs(): boolean {
  let committed: string | undefined;
  try {
    committed = readFileSync(join(root, API_DOC_PATH), 'utf8');
  } catch {
    // missing: reported as stale below
  }
  const fresh = renderApiDocs();
  if (committed !== fresh) {
    console.error(
      committed === undefined
        ? `${API_DOC_PATH} is missing; run 'npm run docs:api' and commit it`
        : `${API_DOC_PATH} differs from what the .proto files and protocol/src/errors.ts generate; run 'npm run docs:api' and commit it`,
    );
    return false;
  }
  console.log(`${API_DOC_PATH} is fresh`);
  return true;
}

// run both checks so one report names every stale artefact
const ok = [checkProtoGen(), checkApiDocs()].every(Boolean);
process.exit(ok ? 0 : 1);
