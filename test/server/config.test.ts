// Server settings: flags over MOE_SERVER_* variables over defaults, errors that name the
// source, and `moe-server serve --help` listing every flag with its variable and default.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigValueError, ENGINE_SETTINGS, OFFLINE_DEFAULTS, resolveConfig, SETTINGS, settingsHelp } from '../../server/config.ts';
import { runCli } from '../helpers/cli.ts';

describe('server configuration', () => {
  it('has a default for everything', () => {
    expect(resolveConfig({}, {})).toEqual({
      model: null,
      weights: 'int4',
      device: { kind: 'cpu' },
      host: '127.0.0.1',
      port: 8000,
      apiKeys: [],
      allowedOrigins: [],
      allowedHosts: [],
      maxQueue: 256,
      maxBodyBytes: 4 * 1024 * 1024,
      servedModelName: null,
      toolCallParser: 'auto',
      reasoningParser: 'auto',
      threads: 0,
      tensorParallel: 0,
      attention: 'wasm',
      expertPlacement: 'auto',
      int4BlockSize: 64,
      cacheDir: null,
      maxModelLen: null,
      maxNumSeqs: 64,
      maxBatchTokens: 256,
      maxStepMs: 200,
      kvCacheTokens: null,
      kvCacheMib: 1024,
      kvBlockSize: 16,
      shutdownTimeout: 30,
      expertLoadWindow: 1024,
      expertMetrics: 'all',
      logLevel: 'info',
    });
  });

  it('reads MOE_SERVER_* variables and lets flags win over them', () => {
    const env = {
      MOE_SERVER_PORT: '9000',
      MOE_SERVER_MODEL: '/models/a',
      MOE_SERVER_API_KEYS: 'k1, k2',
      MOE_SERVER_MAX_QUEUE: '3',
      MOE_SERVER_HOST: '',
    };
    const fromEnv = resolveConfig({}, env);
    expect(fromEnv).toMatchObject({ port: 9000, model: '/models/a', apiKeys: ['k1', 'k2'], maxQueue: 3, host: '127.0.0.1' });
    const metricsEnv = { MOE_SERVER_EXPERT_LOAD_WINDOW: '4096', MOE_SERVER_EXPERT_METRICS: 'layer' };
    expect(resolveConfig({}, metricsEnv)).toMatchObject({ expertLoadWindow: 4096, expertMetrics: 'layer' });
    expect(resolveConfig({ 'expert-metrics': 'all' }, metricsEnv)).toMatchObject({ expertMetrics: 'all' });
    const flagged = resolveConfig({ port: '9100', 'api-key': ['a', 'b'], 'served-model-name': 'moe' }, env);
    expect(flagged).toMatchObject({ port: 9100, apiKeys: ['a', 'b'], servedModelName: 'moe', model: '/models/a' });
  });

  it('gives offline jobs no step time budget unless a flag or variable asks for one', () => {
    expect(resolveConfig({}, {}, OFFLINE_DEFAULTS).maxStepMs).toBe(0);
    expect(resolveConfig({}, { MOE_SERVER_MAX_STEP_MS: '150' }, OFFLINE_DEFAULTS).maxStepMs).toBe(150);
    expect(resolveConfig({ 'max-step-ms': '120' }, {}, OFFLINE_DEFAULTS).maxStepMs).toBe(120);
    expect(settingsHelp(ENGINE_SETTINGS, OFFLINE_DEFAULTS)).toMatch(/--max-step-ms MS\n.*\n\s*env MOE_SERVER_MAX_STEP_MS; default 0/);
  });

  it('reads --allowed-origins and MOE_SERVER_ALLOWED_ORIGINS as web origins', () => {
    const env = { MOE_SERVER_ALLOWED_ORIGINS: 'https://app.example, http://LOCALHOST:3000/' };
    expect(resolveConfig({}, env).allowedOrigins).toEqual(['https://app.example', 'http://localhost:3000']);
    expect(resolveConfig({ 'allowed-origins': ['*', 'http://[::1]:8080'] }, env).allowedOrigins).toEqual(['*', 'http://[::1]:8080']);
    expect(() => resolveConfig({}, { MOE_SERVER_ALLOWED_ORIGINS: 'https://app.example/chat' })).toThrow(
      /MOE_SERVER_ALLOWED_ORIGINS has "https:\/\/app.example\/chat", which is not a web origin/,
    );
    expect(() => resolveConfig({ 'allowed-origins': 'app.example' }, {})).toThrow(/--allowed-origins has "app.example"/);
    expect(() => resolveConfig({ 'allowed-origins': 'https://a.example,' }, {})).toThrow(/--allowed-origins has ""/);
  });

  it('refuses bad values, naming the flag or variable', () => {
    expect(() => resolveConfig({ port: 'eighty' }, {})).toThrow(ConfigValueError);
    expect(() => resolveConfig({ port: 'eighty' }, {})).toThrow(/--port/);
    expect(() => resolveConfig({}, { MOE_SERVER_WEIGHTS: 'fp8' })).toThrow(/MOE_SERVER_WEIGHTS must be one of fp32, int4/);
    expect(() => resolveConfig({ 'max-queue': '0' }, {})).toThrow(/--max-queue/);
    expect(() => resolveConfig({}, { MOE_SERVER_API_KEYS: 'a,,b' })).toThrow(/empty API key/);
    expect(() => resolveConfig({ 'expert-load-window': '0' }, {})).toThrow(/--expert-load-window/);
    expect(() => resolveConfig({}, { MOE_SERVER_EXPERT_METRICS: 'none' })).toThrow(/MOE_SERVER_EXPERT_METRICS must be one of all, layer/);
    expect(() => resolveConfig({ 'max-batch-tokens': '32' }, {})).toThrow(
      /--max-batch-tokens \(32\) must be at least --max-num-seqs \(64\)/,
    );
    expect(resolveConfig({ 'max-batch-tokens': '32', 'max-num-seqs': '32' }, {}).maxBatchTokens).toBe(32);
    expect(() => resolveConfig({ device: 'gpu' }, {})).toThrow(/--device must be cpu, cuda or cuda:N, got "gpu"/);
    expect(() => resolveConfig({}, { MOE_SERVER_DEVICE: 'cuda:x' })).toThrow(/MOE_SERVER_DEVICE must be cpu, cuda or cuda:N/);
  });

  it('reads the device: cpu, cuda (device 0) or cuda:N', () => {
    expect(resolveConfig({ device: 'cuda' }, {}).device).toEqual({ kind: 'cuda', id: 0 });
    expect(resolveConfig({}, { MOE_SERVER_DEVICE: 'cuda:3' }).device).toEqual({ kind: 'cuda', id: 3 });
    expect(resolveConfig({ device: 'cpu' }, { MOE_SERVER_DEVICE: 'cuda:3' }).device).toEqual({ kind: 'cpu' });
  });

  it('serve --help lists every flag with its variable and default', async () => {
    const { code, stdout } = await runCli(['serve', '--help']);
    expect(code).toBe(0);
    for (const setting of Object.values(SETTINGS)) {
      expect(stdout).toContain(`--${setting.flag} `);
      expect(stdout).toContain(`env ${setting.env}; default `);
    }
  });

  it("the README's configuration table has a row for every setting", () => {
    const rows = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('| `--'));
    for (const setting of Object.values(SETTINGS)) {
      expect(
        rows.some((row) => row.startsWith(`| \`--${setting.flag}`) && row.includes(`\`${setting.env}\``)),
        setting.flag,
      ).toBe(true);
    }
  });

  it('serve exits with a usage error for a bad flag value', async () => {
    const { code, stderr } = await runCli(['serve', '--port', 'eighty']);
    expect(code).toBe(2);
    expect(stderr).toContain('--port must be an integer');
  });
});
