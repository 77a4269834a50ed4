// @ts-check
// Fails when src/types/api.d.ts is not what openapi-typescript generates from
// openapi.json (the API's document, kept equal to the API by tests/dashboard.rs):
// generates into a temporary directory and compares. `npm run check:types`;
// `npm run types` rewrites the declarations.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const committed = 'src/types/api.d.ts';
const dir = mkdtempSync(join(tmpdir(), 'hoheit-api-types-'));
try {
  const generated = join(dir, 'api.d.ts');
  execFileSync(process.execPath, ['node_modules/openapi-typescript/bin/cli.js', 'openapi.json', '--output', generated], { stdio: 'inherit' });
  if (readFileSync(generated, 'utf8') !== readFileSync(committed, 'utf8')) {
    try {
      execFileSync('diff', ['-u', committed, generated], { stdio: 'inherit' });
    } catch {
      /* diff exits 1 on a difference; it has printed it */
    }
    console.error(`${committed} is not generated from openapi.json: run \`npm run types\` and commit it`);
    process.exitCode = 1;
  } else {
    console.log(`${committed} is what openapi-typescript generates from openapi.json`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
