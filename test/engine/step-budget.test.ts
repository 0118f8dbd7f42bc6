// The step time budget: what it learns from steps and how many prompt tokens it then allows
// next to the running decodes.
import { describe, expect, it } from 'vitest';
import { MIN_PREFILL_TOKENS, StepBudget } from '../../server/engine/step-budget.ts';

describe('StepBudget', () => {
  it('allows any chunk when off, when nothing decodes, or before it has seen a prompt token', () => {
    expect(new StepBudget(0).prefillTokens(8)).toBe(Infinity);
    const budget = new StepBudget(100);
    budget.record(8, 0, 40);
    expect(budget.prefillTokens(8)).toBe(Infinity);
    budget.record(8, 100, 240);
    expect(budget.prefillTokens(0)).toBe(Infinity);
  });

  it('leaves a step the time its decodes do not use, at the learnt cost of a prompt token', () => {
    const budget = new StepBudget(100);
    budget.record(16, 0, 40); // decode-only: 40 ms
    budget.record(16, 200, 440); // 400 ms more for 200 prompt tokens: 2 ms each
    expect(budget.prefillTokens(16)).toBe(30); // (100 - 40) / 2
  });

  it('always lets a few prompt tokens through, however slow the decodes', () => {
    const budget = new StepBudget(50);
    budget.record(64, 0, 300);
    budget.record(64, 100, 500);
    expect(budget.prefillTokens(64)).toBe(MIN_PREFILL_TOKENS);
  });

  it('follows a changing machine with running averages', () => {
    const budget = new StepBudget(100);
    budget.record(4, 0, 20);
    budget.record(4, 100, 120); // 1 ms a token
    const before = budget.prefillTokens(4);
    for (let i = 0; i < 20; i++) budget.record(4, 100, 420); // now 4 ms a token
    expect(budget.prefillTokens(4)).toBeLessThan(before);
    expect(budget.prefillTokens(4)).toBe(20); // (100 - 20) / 4, once the average has settled
  });
});
