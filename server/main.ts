// `moe-server serve`: listen first (so /health answers 503 while loading), then write the demo
// checkpoint if no --model was given, compile and load the model, and serve until SIGINT or
// SIGTERM; then stop taking requests, give running ones --shutdown-timeout seconds to finish,
// cancel the rest by stopping the engine, and exit 0.
import { buildApp } from './app.ts';
import type { ServerConfig } from './config.ts';
import { acceptedHosts } from './hosts.ts';
import { loadModel } from './load-model.ts';
import { describeExecution, type ServedModel } from './served-model.ts';
import type { LoadMemory } from './engine/api.ts';

export async function runServer(config: ServerConfig): Promise<number> {
  let resolveModel: (model: ServedModel) => void = () => {};
  let rejectModel: (err: unknown) => void = () => {};
  const pending = new Promise<ServedModel>((resolve, reject) => {
    resolveModel = resolve;
    rejectModel = reject;
  });
  const { app } = await buildApp({
    model: pending,
    apiKeys: config.apiKeys,
    allowedOrigins: config.allowedOrigins,
    acceptedHosts: acceptedHosts(config.host, config.allowedHosts),
    maxQueue: config.maxQueue,
    maxBodyBytes: config.maxBodyBytes,
    logLevel: config.logLevel,
    expertLoadWindow: config.expertLoadWindow,
    perExpertMetrics: config.expertMetrics === 'all',
  });
  const address = await app.listen({ host: config.host, port: config.port });
  console.error(`moe-server listening on ${address} (loading the model; /health answers 503 until it is ready)`);

  let model: ServedModel;
  try {
    model = await loadModel(config);
    resolveModel(model);
  } catch (err) {
    rejectModel(err);
    console.error(`moe-server: the model failed to load: ${err instanceof Error ? err.message : String(err)}`);
    await app.close();
    return 1;
  }
  if (config.model === null)
    console.error('serving the demo model: its weights are random, so its text is gibberish (use --model DIR for a real checkpoint)');
  console.error(`ready: model "${model.id}" (context ${model.maxModelLen} tokens) at ${address}/v1`);
  console.error(describeExecution(model.execution));
  console.error(memoryLine(model.engine.info.memory));

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const running = model.engine.numInFlight;
  console.error(
    `${signal}: shutting down; ${running} running request(s) get ${config.shutdownTimeout} s to finish (a second signal exits at once)`,
  );
  process.once(signal, () => process.exit(1));
  // Stops accepting connections; resolves once every HTTP request has ended. WebSocket
  // sessions close as they go idle, so the engine's own count says when they are done too.
  const closed = app.close();
  const drained = closed.then(() => engineIdle(model));
  let graceTimer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace over'>(
    (resolve) => (graceTimer = setTimeout(() => resolve('grace over'), config.shutdownTimeout * 1000)),
  );
  if ((await Promise.race([drained, graceOver])) === 'grace over') {
    console.error(`shutdown: cancelling ${model.engine.numInFlight} request(s) still running`);
    // Their streams get an error chunk or event as the engine stops; the handlers need a
    // moment to write it before whatever is still open (idle keep-alive spares) is cut.
    await model.engine.close();
    const flush = new Promise<'cut'>((resolve) => setTimeout(() => resolve('cut'), FLUSH_MS).unref());
    if ((await Promise.race([closed, flush])) === 'cut') app.server.closeAllConnections();
    await closed;
  }
  clearTimeout(graceTimer);
  await model.engine.close();
  return 0;
}

/** "memory: 812 MiB resident after load; opening the sessions took 640 MiB; KV cache 256 MiB (resident as it fills)" */
export function memoryLine(m: LoadMemory): string {
  const mib = (bytes: number): string => `${Math.round(bytes / 2 ** 20)} MiB`;
  return (
    `memory: ${mib(process.memoryUsage.rss())} resident after load; opening the sessions took ${mib(m.sessionsBytes)}; ` +
    `KV cache ${mib(m.kvCacheBytes)} (resident as it fills)`
  );
}

/** How long streams cancelled at the end of the grace period get to write their last event. */
export const FLUSH_MS = 1000;

/** Resolves once the engine has no request in flight (polled: shutdown only). */
async function engineIdle(model: ServedModel): Promise<'idle'> {
  while (model.engine.numInFlight > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  return 'idle';
}
