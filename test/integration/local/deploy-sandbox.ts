/**
 * Builds a throw-away "repo" in a temp dir holding deploy/local/{nats,processes}.ts (transpiled on
 * the fly, so tests exercise the current source without a full build) plus fake entry points.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import ts from 'typescript';
import { repoRoot } from '../../fixtures/processes.js';

const DEPLOY_FILES = ['nats', 'processes'] as const;

/** Create `<tmp>/package.json` + `<tmp>/dist/deploy/local/*.js` and any extra files; returns the root. */
export function makeSandbox(extra: Record<string, string> = {}): string {
  const root = mkdtempSync(join(tmpdir(), 'sphere-deploy-test-'));
  writeFileSync(join(root, 'package.json'), '{ "type": "module", "private": true }\n');
  const outDir = join(root, 'dist', 'deploy', 'local');
  mkdirSync(outDir, { recursive: true });
  for (const f of DEPLOY_FILES) {
    const src = readFileSync(join(repoRoot, 'deploy', 'local', `${f}.ts`), 'utf8');
    const out = ts.transpileModule(src, {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
      fileName: `${f}.ts`,
    });
    writeFileSync(join(outDir, `${f}.js`), out.outputText);
  }
  for (const [rel, text] of Object.entries(extra)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}
