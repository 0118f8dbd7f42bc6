// Binary heaps of token ids keyed by a Float32Array (logits, logprobs), for partial selection
// over a vocabulary without sorting all of it. One total order everywhere: higher key first,
// equal keys -> lower id first, so every selection is deterministic. Callers keep NaN keys
// out of the heaps. Two sift functions rather than one with a direction flag: this is the
// sampler's inner loop.

/** True when id a ranks before id b. */
function ranksBefore(keys: Float32Array, a: number, b: number): boolean {
  const ka = keys[a];
  const kb = keys[b];
  return ka > kb || (ka === kb && a < b);
}

/** Sift down in a heap whose root is the best id: pops come out in rank order. */
function siftDownBest(keys: Float32Array, ids: Int32Array, size: number, pos: number): void {
  const id = ids[pos];
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && ranksBefore(keys, ids[child + 1], ids[child])) child++;
    if (!ranksBefore(keys, ids[child], id)) break;
    ids[pos] = ids[child];
    pos = child;
  }
  ids[pos] = id;
}

/** Sift down in a heap whose root is the worst id: a bounded "keep the k best" heap. */
function siftDownWorst(keys: Float32Array, ids: Int32Array, size: number, pos: number): void {
  const id = ids[pos];
  for (;;) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    if (child + 1 < size && ranksBefore(keys, ids[child], ids[child + 1])) child++;
    if (!ranksBefore(keys, id, ids[child])) break;
    ids[pos] = ids[child];
    pos = child;
  }
  ids[pos] = id;
}

/** Arranges ids[0, size) as a best-on-top heap. */
export function heapifyBest(keys: Float32Array, ids: Int32Array, size: number): void {
  for (let pos = (size >> 1) - 1; pos >= 0; pos--) siftDownBest(keys, ids, size, pos);
}

/** Pops the root of a best-on-top heap of `size`; it lands at ids[size - 1]. Returns it. */
export function popBest(keys: Float32Array, ids: Int32Array, size: number): number {
  const best = ids[0];
  const last = size - 1;
  ids[0] = ids[last];
  ids[last] = best;
  siftDownBest(keys, ids, last, 0);
  return best;
}

/**
 * Writes the ids of the k best keys to ids[0, count), best first, and returns count
 * (= min(k, number of non-NaN keys)). O(n log k) worst case, about O(n) for typical logits.
 * ids must hold at least min(k, keys.length) entries.
 */
export function selectBest(keys: Float32Array, k: number, ids: Int32Array): number {
  if (k <= 0) return 0;
  const n = keys.length;
  if (ids.length < Math.min(k, n)) throw new RangeError(`id buffer holds ${ids.length}, need ${Math.min(k, n)}`);
  let size = 0;
  let i = 0;
  for (; i < n && size < k; i++) if (keys[i] === keys[i]) ids[size++] = i;
  for (let pos = (size >> 1) - 1; pos >= 0; pos--) siftDownWorst(keys, ids, size, pos);
  // The root's key, held in a local: most ids lose to it, and one compare against a register
  // is the whole cost of rejecting them (twice as fast over a vocabulary as reading it back).
  let worst = size > 0 ? keys[ids[0]] : Infinity;
  for (; i < n; i++) {
    // Strict: a later id with an equal key ranks after the root, so it never replaces it.
    if (keys[i] > worst) {
      ids[0] = i;
      siftDownWorst(keys, ids, size, 0);
      worst = keys[ids[0]];
    }
  }
  // Heapsort of a worst-on-top heap: the worst goes to the back each time -> best first.
  for (let end = size - 1; end > 0; end--) {
    const worst = ids[0];
    ids[0] = ids[end];
    ids[end] = worst;
    siftDownWorst(keys, ids, end, 0);
  }
  return size;
}
