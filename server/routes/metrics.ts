// GET /metrics (Prometheus), GET /v1/experts/stats (the expert-load windows as JSON, for
// scripts and the dashboard) and GET /dashboard (the live expert-load page).
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { unavailable } from '../openai/errors.ts';
import type { ServerContext } from './context.ts';

// Read once: the page is plain HTML with inline script, no build step and no external assets.
const DASHBOARD_HTML = readFileSync(new URL('../metrics/dashboard.html', import.meta.url), 'utf8');

export function metricsRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/metrics', async (_request, reply) => {
    const body = await ctx.metrics.exposition();
    return reply.type(ctx.metrics.contentType).send(body);
  });
  app.get('/v1/experts/stats', async () => {
    // 503 while loading: there are no layers to report yet.
    ctx.slot.get();
    const stats = ctx.metrics.expertStats();
    if (stats === null) throw unavailable('The model is still loading; retry shortly.', 'model_loading');
    return stats;
  });
  app.get('/dashboard', async (_request, reply) => reply.type('text/html; charset=utf-8').send(DASHBOARD_HTML));
}
