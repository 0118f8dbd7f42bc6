// First step of `npm test`: the programs the integration tests drive (test/helpers/system-tools.ts)
// are installed from Debian's packages when missing and this user can (root, or sudo without a
// password); otherwise it exits 1 with one line saying what is missing and how to get it.
// Quiet when everything is there.
import { spawnSync } from 'node:child_process';
import { installHint, missingTools, type SystemTool } from './helpers/system-tools.ts';

/** The command prefix that runs apt-get as root, or null when this user cannot. */
function aptGet(): string[] | null {
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) return null;
  if (process.getuid?.() === 0) return ['apt-get'];
  return spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? ['sudo', '-n', 'apt-get'] : null;
}

function run(command: string[]): boolean {
  const [file, ...args] = command;
  // apt prints its errors on stderr; its progress is not wanted in a test run.
  const result = spawnSync(file, args, {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

function fail(missing: readonly SystemTool[], why: string): never {
  const names = missing.map((t) => `${t.name} (${t.path})`).join(', ');
  console.error(
    `npm test: the integration tests need ${names}, ${missing.length === 1 ? 'which is' : 'which are'} missing ${why}; ` +
      `${installHint(missing)}.`,
  );
  process.exit(1);
}

const missing = missingTools();
if (missing.length > 0) {
  const apt = aptGet();
  if (apt === null) fail(missing, 'and cannot be installed here (no apt-get, or neither root nor password-less sudo)');
  const packages = [...new Set(missing.map((t) => t.debianPackage))];
  console.error(`npm test: installing Debian's ${packages.join(' ')} for the integration tests (apt-get, once)`);
  const installed = run([...apt, 'update', '-qq']) && run([...apt, 'install', '-y', '-qq', '--no-install-recommends', ...packages]);
  const stillMissing = missingTools();
  if (!installed) fail(missing, 'and apt-get failed to install');
  if (stillMissing.length > 0) fail(stillMissing, `even after apt-get installed ${packages.join(' ')}`);
}
