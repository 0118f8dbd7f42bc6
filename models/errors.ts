// Typed errors for everything that can be wrong with a model on disk. Each names the file
// and the key or tensor at fault, so a user can fix the checkpoint without a debugger.

/** config.json (or another JSON file of the checkpoint) has a missing, mistyped or unsupported key. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly key: string,
    detail: string,
  ) {
    super(`${file}: "${key}" ${detail}`);
    this.name = 'ConfigError';
  }
}

/** A tensor is missing, has the wrong shape or dtype, or a safetensors file is malformed. */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | null,
    detail: string,
  ) {
    super(tensor === null ? `${file}: ${detail}` : `${file}: tensor "${tensor}" ${detail}`);
    this.name = 'CheckpointError';
  }
}
