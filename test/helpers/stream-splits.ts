// Ways a detokenizer could have cut one model output into text deltas: at every UTF-8 byte
// (decoded as a streaming UTF-8 decoder would: an incomplete character waits for its next
// byte, so a cut inside one yields "" and then the whole character), and one code point at
// a time.

/** For every byte offset k, the two deltas a streaming decoder yields for bytes [0,k), [k,n). */
export function splitsAtEveryByte(text: string): string[][] {
  const bytes = new TextEncoder().encode(text);
  const splits: string[][] = [];
  for (let k = 0; k <= bytes.length; k++) {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    splits.push([decoder.decode(bytes.subarray(0, k), { stream: true }), decoder.decode(bytes.subarray(k))]);
  }
  return splits;
}

/** One code point per delta. */
export function codePointDeltas(text: string): string[] {
  return Array.from(text);
}

/** Every cut of the text into three deltas at code point boundaries (quadratic: short texts). */
export function splitsIntoThree(text: string): string[][] {
  const points = Array.from(text);
  const splits: string[][] = [];
  for (let i = 0; i <= points.length; i++) {
    for (let j = i; j <= points.length; j++) {
      splits.push([points.slice(0, i).join(''), points.slice(i, j).join(''), points.slice(j).join('')]);
    }
  }
  return splits;
}
