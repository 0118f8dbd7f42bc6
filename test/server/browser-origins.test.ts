// What the origin guard is for, in a real headless Chromium: a page from another origin
// cannot make the server generate (a text/plain POST needs no preflight, a WebSocket no CORS),
// a listed origin can call it through CORS, and the server's own pages keep working, fetch()
// with a string body included.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSamples, select } from '../helpers/prometheus-text.ts';
import { CHROMIUM, requireTool } from '../helpers/system-tools.ts';
import { listen, MODEL, recordEngine, startTestModel, type TestModel, type TestServer } from './helpers.ts';

/** A site on its own loopback port (its own origin) serving an empty page. */
async function pageSite(): Promise<{ origin: string; server: Server }> {
  const server = createServer((_request, response) =>
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>site</title>'),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

const completion = JSON.stringify({ model: MODEL, prompt: 'Hello', max_tokens: 2 });

/** In the page: POST a completion as fetch() sends a string body; the status, or 'blocked'. */
function postFromPage(page: Page, url: string, init: { json: boolean }): Promise<number | 'blocked'> {
  return page.evaluate(
    async ({ url, body, json }) => {
      try {
        const response = await fetch(url, { method: 'POST', body, headers: json ? { 'content-type': 'application/json' } : {} });
        return response.status;
      } catch {
        return 'blocked' as const;
      }
    },
    { url, body: completion, json: init.json },
  );
}

/** In the page: whether a WebSocket to `url` opens. */
function wsOpensFromPage(page: Page, url: string): Promise<boolean> {
  return page.evaluate(
    (url) =>
      new Promise<boolean>((resolve) => {
        const socket = new WebSocket(url);
        socket.onopen = () => (socket.close(), resolve(true));
        socket.onerror = () => resolve(false);
      }),
    url,
  );
}

describe('pages in headless Chromium calling the server', () => {
  let model: TestModel;
  let server: TestServer;
  let listed: Awaited<ReturnType<typeof pageSite>>;
  let foreign: Awaited<ReturnType<typeof pageSite>>;
  let browser: Browser;
  beforeAll(async () => {
    [listed, foreign] = [await pageSite(), await pageSite()];
    model = await startTestModel();
    server = await listen({ model: model.model, allowedOrigins: [listed.origin] });
    browser = await chromium.launch({
      executablePath: requireTool(CHROMIUM),
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await model?.close();
    for (const site of [listed, foreign]) site?.server.close();
  });

  const openPage = async (url: string): Promise<Page> => {
    const page = await browser.newPage();
    await page.goto(url);
    return page;
  };
  const refusedWithForbidden = async (): Promise<number> => {
    const samples = select(parseSamples(await (await fetch(`${server.url}/metrics`)).text()), 'moe_http_requests_total', { status: '403' });
    return samples.reduce((sum, s) => sum + s.value, 0);
  };

  it('a foreign page can neither generate (text/plain POST, JSON POST) nor open the WebSocket', async () => {
    const engine = recordEngine(model.model);
    const page = await openPage(foreign.origin);
    const refusedBefore = await refusedWithForbidden();
    expect(await postFromPage(page, `${server.url}/v1/completions`, { json: false })).toBe('blocked');
    expect(await postFromPage(page, `${server.url}/v1/completions`, { json: true })).toBe('blocked');
    expect(await wsOpensFromPage(page, `${server.url.replace('http:', 'ws:')}/v1/ws`)).toBe(false);
    engine.stop();
    expect(engine.finished()).toEqual([]);
    expect(engine.tokens()).toBe(0);
    // The browser did send them (the simple POST, the preflight, the handshake): the server refused each.
    expect((await refusedWithForbidden()) - refusedBefore).toBeGreaterThanOrEqual(3);
    await page.close();
  });

  it('a listed origin calls it through CORS, with application/json', async () => {
    const page = await openPage(listed.origin);
    expect(await postFromPage(page, `${server.url}/v1/completions`, { json: true })).toBe(200);
    // fetch()'s default text/plain is read as JSON too: the origin is allowed.
    expect(await postFromPage(page, `${server.url}/v1/completions`, { json: false })).toBe(200);
    expect(await wsOpensFromPage(page, `${server.url.replace('http:', 'ws:')}/v1/ws`)).toBe(true);
    await page.close();
  });

  it("the server's own page (the dashboard's origin) works, fetch() with a string body too", async () => {
    const page = await openPage(`${server.url}/dashboard`);
    expect(await postFromPage(page, '/v1/completions', { json: false })).toBe(200);
    expect(await postFromPage(page, '/v1/completions', { json: true })).toBe(200);
    expect(await wsOpensFromPage(page, `${server.url.replace('http:', 'ws:')}/v1/ws`)).toBe(true);
    await page.close();
  });
});
