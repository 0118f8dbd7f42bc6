// A tensor-parallel shard worker that dies must fail the steps that need it at once, with an
// error naming the shard, never leave the engine waiting on shared memory.
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ShardSessions } from '../../runtime/tp/shard-sessions.ts';
import { ShardFailedError } from '../../runtime/tp/shard-group.ts';
import { openRunner, testTokens, type OpenedRunner, type TinyModel, writeTinyModel } from '../helpers/tiny-model.ts';

describe('shard group', () => {
  let model: TinyModel;
  let opened: OpenedRunner;

  beforeAll(async () => {
    model = writeTinyModel({}, 23);
    opened = await openRunner(model, 'fp32', 4, 2);
  });
  afterAll(async () => {
    await opened?.release();
    model?.remove();
  });

  it('records how long rank 0 waited at every hand-off when asked to', () => {
    const cache = opened.newCache();
    const { shards, layers } = opened.runner.sessions;
    opened.runner.step([{ tokens: testTokens(4, 1), cache, logits: 'last' }]);
    const waits: number[] = [];
    shards.handoffWaits = waits;
    opened.runner.step([{ tokens: [5], cache, logits: 'last' }]);
    shards.handoffWaits = null;
    // One remote: attention and MLP in every layer, then the LM head.
    expect(waits).toHaveLength(2 * layers.length + 1);
    expect(waits.every((ms) => ms >= 0)).toBe(true);
    opened.runner.step([{ tokens: [6], cache, logits: 'last' }]);
    expect(waits).toHaveLength(2 * layers.length + 1);
  });

  it('fails fast, naming the shard, once a shard worker has exited', async () => {
    const cache = opened.newCache();
    expect(() => opened.runner.step([{ tokens: testTokens(4, 1), cache, logits: 'last' }])).not.toThrow();
    // The shard's worker is private to the group; reach it to kill it as a crash would.
    const { remotes } = opened.runner.sessions.shards as unknown as { remotes: Array<{ worker: Worker }> };
    const exited = new Promise((resolve) => remotes[0].worker.once('exit', resolve));
    await remotes[0].worker.terminate();
    await exited;
    const started = performance.now();
    expect(() => opened.runner.step([{ tokens: [5], cache, logits: 'last' }])).toThrow(ShardFailedError);
    expect(() => opened.runner.step([{ tokens: [5], cache, logits: 'last' }])).toThrow(/shard 1 exited/);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

// Every shard routes its own copy of a layer's rows (mlp-in): they must agree, and a step in
// which they do not fails rather than mixing slices of different experts.
describe('shard group routing', () => {
  let model: TinyModel;
  let opened: OpenedRunner;

  beforeAll(async () => {
    model = writeTinyModel({}, 29);
    opened = await openRunner(model, 'fp32', 4, 2);
  });
  afterAll(async () => {
    await opened?.release();
    model?.remove();
  });

  it('fails the step when a shard routed a layer differently from shard 0', () => {
    const cache = opened.newCache();
    expect(() => opened.runner.step([{ tokens: testTokens(4, 1), cache, logits: 'last' }])).not.toThrow();
    // Make shard 0 alone see other router logits, as a diverging shard would.
    const { local } = opened.runner.sessions.shards as unknown as { local: ShardSessions };
    const layer = local.layers.findIndex((l) => l.gating !== null);
    const mlpIn = local.layers[layer].mlpIn;
    const run = mlpIn.run.bind(mlpIn);
    mlpIn.run = (feeds) => {
      const out = run(feeds);
      const logits = out.router_logits.data as Float32Array;
      for (let i = 0; i < logits.length; i++) logits[i] = -logits[i];
      return out;
    };
    expect(() => opened.runner.step([{ tokens: [5], cache, logits: 'last' }])).toThrow(
      new RegExp(`shard 1 routed layer ${layer} differently`),
    );
  });
});
