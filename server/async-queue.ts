// A queue one producer pushes into and one consumer awaits: the hand-off between callbacks
// (worker messages, engine events) and async iteration. Pushing wakes a waiting consumer;
// after end(), next() drains what is left and then answers undefined.
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private ended = false;

  push(item: T): void {
    this.items.push(item);
    this.signal();
  }

  /** No more items will come. */
  end(): void {
    this.ended = true;
    this.signal();
  }

  /** The next item, or undefined once the queue has ended and is empty. */
  async next(): Promise<T | undefined> {
    while (this.items.length === 0) {
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    return this.items.shift();
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
