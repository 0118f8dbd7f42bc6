// Token ids are whole numbers in [0, vocabSize). Ids arrive from clients (prompts, logit_bias,
// stop_token_ids, /detokenize) and travel into the engine and the model; every range check
// is this one, so all of them agree on what a valid id is and say so in the same words.

export function isTokenId(id: number, vocabSize: number): boolean {
  return Number.isInteger(id) && id >= 0 && id < vocabSize;
}

/** Index of the first id outside the vocabulary, or -1 when all are inside. */
export function firstOutsideVocabulary(ids: ArrayLike<number>, vocabSize: number): number {
  for (let i = 0; i < ids.length; i++) if (!isTokenId(ids[i], vocabSize)) return i;
  return -1;
}

/** "token id 40000 is outside the vocabulary (0..31999)" */
export function outsideVocabularyMessage(id: number, vocabSize: number): string {
  return `token id ${id} is outside the vocabulary (0..${vocabSize - 1})`;
}
