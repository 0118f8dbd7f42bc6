// The metrics as their consumers see them: promtool's linter, a real Prometheus scraping the
// server (PromQL over the expert-load counters), the Grafana dashboards and alert rules
// under docker/ (every metric they name is exported; every query runs), and the /dashboard
// page in a real headless Chromium.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { familyNames, parseSamples, select } from '../helpers/prometheus-text.ts';
import { startPrometheus, type PrometheusServer } from '../helpers/prometheus-server.ts';
import { CHROMIUM, PROMTOOL, requireTool } from '../helpers/system-tools.ts';
import { MODEL, serveTinyModel } from './helpers.ts';

const served = serveTinyModel({ expertLoadWindow: 100_000 });
const DOCKER = new URL('../../docker/', import.meta.url).pathname;
const DASHBOARDS = join(DOCKER, 'grafana/dashboards');
const ALERTS = join(DOCKER, 'prometheus/alerts.yml');
const OUTPUT = new URL('../../test-output/', import.meta.url).pathname;

async function metricsText(): Promise<string> {
  return (await fetch(`${served.server.url}/metrics`)).text();
}

async function complete(prompt: string, maxTokens: number): Promise<void> {
  await served.client.completions.create({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true } as never);
}

/** layer -> per-expert routed-token counters, from /metrics. */
async function expertCounters(): Promise<Record<string, number[]>> {
  const counters: Record<string, number[]> = {};
  for (const s of select(parseSamples(await metricsText()), 'moe_expert_routed_tokens_total')) {
    (counters[s.labels.layer] ??= [])[Number(s.labels.expert)] = s.value;
  }
  return counters;
}

/** Every dashboard query, with Grafana's variables given values Prometheus understands. */
function dashboardQueries(): string[] {
  const exprs: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'expr' && typeof value === 'string') exprs.push(value);
        else walk(value);
      }
    }
  };
  for (const file of readdirSync(DASHBOARDS)) walk(JSON.parse(readFileSync(join(DASHBOARDS, file), 'utf8')));
  return exprs.map((e) => e.replaceAll('$model', MODEL).replaceAll('$layer', '1').replaceAll('$__rate_interval', '1m'));
}

describe('the /metrics output', () => {
  it('passes promtool check metrics', async () => {
    await complete('Hello there', 4);
    const result = spawnSync(requireTool(PROMTOOL), ['check', 'metrics'], { input: await metricsText(), encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('has every metric the Grafana dashboards and alert rules use', async () => {
    const families = familyNames(await metricsText());
    const texts = [...readdirSync(DASHBOARDS).map((f) => readFileSync(join(DASHBOARDS, f), 'utf8')), readFileSync(ALERTS, 'utf8')];
    const used = new Set(texts.flatMap((text) => [...text.matchAll(/\b(?:moe|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((name) => !name.startsWith('moe_')).length).toBeGreaterThan(5);
    // A histogram's series are its family name plus _bucket, _sum or _count.
    const missing = [...used].filter((name) => !families.has(name) && !families.has(name.replace(/_(bucket|sum|count)$/, '')));
    expect(missing).toEqual([]);
  });

  it('alert rules pass promtool check rules', () => {
    const result = spawnSync(requireTool(PROMTOOL), ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toContain('SUCCESS: 5 rules found');
    expect(result.status).toBe(0);
  });
});

describe('a real Prometheus scraping the server', () => {
  let prometheus: PrometheusServer | null = null;
  beforeAll(async () => {
    prometheus = await startPrometheus(new URL(served.server.url).host);
  });
  afterAll(async () => prometheus?.stop());

  it('answers PromQL over the expert-load counters with the exported values', async () => {
    await Promise.all([complete('The quick brown fox', 6), complete('Once upon a time', 9)]);
    const expected = await expertCounters();
    const byLayer = 'sum by (layer) (moe_expert_routed_tokens_total{model_name="tiny-moe"})';
    const layerOne = 'moe_expert_routed_tokens_total{model_name="tiny-moe", layer="1"}';
    // Traffic has stopped: wait for a scrape that saw all of it.
    const deadline = Date.now() + 60_000;
    let sums: Record<string, number> = {};
    while (Date.now() < deadline) {
      sums = Object.fromEntries((await prometheus!.query(byLayer)).map((s) => [s.metric.layer, Number(s.value[1])]));
      if (Object.keys(expected).every((layer) => sums[layer] === expected[layer].reduce((a, b) => a + b, 0))) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(sums).toEqual(Object.fromEntries(Object.entries(expected).map(([layer, c]) => [layer, c.reduce((a, b) => a + b, 0)])));
    const perExpert = await prometheus!.query(layerOne);
    const fromPrometheus: number[] = [];
    for (const s of perExpert) fromPrometheus[Number(s.metric.expert)] = Number(s.value[1]);
    expect(fromPrometheus).toEqual(expected['1']);
    const routed = await prometheus!.query(
      'moe_layer_routed_tokens_total{layer="1"} * 2 - on (model_name, layer) sum by (model_name, layer) (moe_expert_routed_tokens_total)',
    );
    expect(routed.map((s) => Number(s.value[1]))).toEqual([0]); // top-2: choices = 2 x tokens
  });

  it('runs every Grafana dashboard query and returns series for each', async () => {
    // A full collection, so that the GC panel's histogram has a series to rate.
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    // rate() needs two scrapes inside its range; they are a second apart.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    for (const expr of queries) {
      const result = await prometheus!.query(expr);
      expect(result.length, expr).toBeGreaterThan(0);
    }
  });
});

describe('the /dashboard page in headless Chromium', () => {
  it('shows the routed counts in the heatmap, updating as requests run', async () => {
    const browser = await chromium.launch({
      executablePath: requireTool(CHROMIUM),
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const requests: string[] = [];
      page.on('request', (request) => requests.push(request.url()));
      await page.goto(`${served.server.url}/dashboard?interval=200`);
      const cellLoads = () =>
        page.$$eval('.cell', (cells) =>
          cells.map(
            (c) =>
              [
                (c as HTMLElement).dataset.layer,
                Number((c as HTMLElement).dataset.expert),
                Number((c as HTMLElement).dataset.load),
              ] as const,
          ),
        );
      const showsCounters = async (): Promise<void> => {
        const expected = await expertCounters();
        await page.waitForFunction(
          (want) => {
            const cells = [...document.querySelectorAll<HTMLElement>('.cell')];
            return cells.length > 0 && cells.every((c) => want[c.dataset.layer!]?.[Number(c.dataset.expert)] === Number(c.dataset.load));
          },
          expected,
          { timeout: 30_000 },
        );
      };
      await showsCounters();
      for (const prompt of ['A first request', 'then a second one', 'and a third']) {
        await complete(prompt, 12);
        await showsCounters(); // the page follows the traffic, request by request
      }
      const expected = await expertCounters();
      const shown: Record<string, number[]> = {};
      for (const [layer, expert, load] of await cellLoads()) (shown[layer!] ??= [])[expert] = load;
      expect(shown).toEqual(expected);
      expect(Object.keys(shown)).toEqual(['1', '2']);
      expect(await page.locator('#history polyline').count()).toBe(2);
      expect(await page.locator('#layers tr').count()).toBe(2);
      // No request left the server: no CDN, no external assets.
      expect(requests.every((url) => url.startsWith(served.server.url))).toBe(true);
      mkdirSync(OUTPUT, { recursive: true });
      await page.screenshot({ path: join(OUTPUT, 'dashboard.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
