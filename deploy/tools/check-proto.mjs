#!/usr/bin/env node
// Check that proto/gen/ is what `buf generate` produces from proto/ right now.
//
//   node deploy/tools/check-proto.mjs        (npm run proto:check)
//
// Regenerates into a temp dir (`buf generate proto --template proto/buf.gen.yaml --output <tmp>`;
// --output is prepended to the template's `out:` dirs) and compares byte for byte with the
// committed tree. Exit 0 = up to date, 1 = stale (lists the files; fix with `npm run proto:gen`),
// 2 = buf itself failed. Runs offline: buf ships in the @bufbuild/buf npm package and the
// ts-proto plugin is local.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const template = join(root, 'proto', 'buf.gen.yaml');
const buf = join(root, 'node_modules', '.bin', 'buf');

/** @param {string} dir @returns {string[]} paths relative to dir */
function listFiles(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}

const outs = [
  ...new Set(
    (parse(readFileSync(template, 'utf8'))?.plugins ?? [])
      .map((p) => String(p.out))
      .filter((o) => o !== 'undefined'),
  ),
];
if (outs.length === 0) {
  console.error(`check-proto: no plugin "out:" directories in ${relative(root, template)}`);
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'sphere-proto-check-'));
try {
  const r = spawnSync(buf, ['generate', 'proto', '--template', template, '--output', tmp], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.error(
      `check-proto: buf generate failed (exit ${r.status ?? r.signal}):\n${r.stderr || r.error?.message || ''}`,
    );
    process.exit(2);
  }
  const stale = [];
  for (const out of outs) {
    const committed = join(root, out);
    const fresh = join(tmp, out);
    const a = new Set(listFiles(committed));
    const b = new Set(listFiles(fresh));
    for (const f of b) {
      if (!a.has(f)) stale.push(`  missing   ${join(out, f)}`);
      else if (!readFileSync(join(committed, f)).equals(readFileSync(join(fresh, f))))
        stale.push(`  outdated  ${join(out, f)}`);
    }
    for (const f of a) if (!b.has(f)) stale.push(`  extra     ${join(out, f)} (no longer generated)`);
  }
  if (stale.length > 0) {
    console.error(
      `check-proto: generated code is stale:\n${stale.join('\n')}\nRun \`npm run proto:gen\` and commit the result.`,
    );
    process.exit(1);
  }
  console.log(`✓ proto/gen up to date (${outs.join(', ')})`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
