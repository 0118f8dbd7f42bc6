// Programs some integration tests drive: Debian's chromium (the /dashboard page) and
// prometheus (a real scrape, PromQL, promtool). `npm test` installs them first when it can
// (test/provision-tools.ts); a missing one fails the test, never skips it. Each path can be
// pointed elsewhere with its environment variable (another distribution, or a check of the
// missing-tool path).
import { existsSync } from 'node:fs';

export interface SystemTool {
  /** What the tests call it. */
  name: string;
  path: string;
  /** The environment variable that overrides `path`. */
  env: string;
  debianPackage: string;
}

function tool(name: string, defaultPath: string, env: string, debianPackage: string): SystemTool {
  const override = process.env[env];
  return { name, path: override !== undefined && override !== '' ? override : defaultPath, env, debianPackage };
}

export const CHROMIUM = tool('chromium', '/usr/bin/chromium', 'MOE_TEST_CHROMIUM', 'chromium');
export const PROMETHEUS = tool('prometheus', '/usr/bin/prometheus', 'MOE_TEST_PROMETHEUS', 'prometheus');
export const PROMTOOL = tool('promtool', '/usr/bin/promtool', 'MOE_TEST_PROMTOOL', 'prometheus');
export const SYSTEM_TOOLS: readonly SystemTool[] = [CHROMIUM, PROMETHEUS, PROMTOOL];

export function missingTools(): SystemTool[] {
  return SYSTEM_TOOLS.filter((t) => !existsSync(t.path));
}

/** How to get the missing tools, in one line. */
export function installHint(missing: readonly SystemTool[]): string {
  const packages = [...new Set(missing.map((t) => t.debianPackage))].join(' ');
  const vars = missing.map((t) => t.env).join(', ');
  return (
    `install Debian's ${packages} (as root: apt-get install ${packages}) or set ${vars} to ` +
    `${missing.length === 1 ? "the program's path" : 'their paths'}`
  );
}

/** The tool's path, or an error saying how to get it. */
export function requireTool(tool: SystemTool): string {
  if (!existsSync(tool.path)) throw new Error(`${tool.path} (${tool.name}) is missing: ${installHint([tool])}`);
  return tool.path;
}
