import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Locates the executable `name`. When the environment variable `envVar` is set (non-empty) it is
 * authoritative: its value is returned if it is an executable file, otherwise `null` (no silent
 * fallback to another binary). Without it, `$PATH` is searched, then `searchDirs`.
 */
export function findExecutable(name: string, envVar: string, searchDirs: readonly string[]): string | null {
  const override = process.env[envVar];
  if (override !== undefined && override !== '') return isExecutableFile(override) ? override : null;
  const pathDirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '');
  for (const dir of [...pathDirs, ...searchDirs]) {
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return null;
}
