// Debian packages some integration tests drive (chromium, prometheus). They are installed by
// `npm run setup:test-deps` and by .ci/run; a missing one fails the test, never skips it.
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';
export const PROMETHEUS = '/usr/bin/prometheus';
export const PROMTOOL = '/usr/bin/promtool';

/** The path, or an error saying how to install it. */
export function requireTool(path: string, debianPackage: string): string {
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: install Debian's ${debianPackage} package (npm run setup:test-deps, or apt-get install ${debianPackage})`,
    );
  }
  return path;
}
