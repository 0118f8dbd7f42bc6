// Structured output for one model: xgrammar's TokenizerInfo and GrammarCompiler built once
// from the model's vocabulary, compiled grammars cached by their text, and a SequenceGrammar
// (matcher) per constrained sequence. Lives in the engine worker: xgrammar's objects belong
// to the WebAssembly instance of the thread that made them.
import type { CompiledGrammar, GrammarCompiler, TokenizerInfo } from '@mlc-ai/web-xgrammar';
import { choiceGrammar, GrammarCompileError, grammarSpecKey, type GrammarSpec } from './grammar-spec.ts';
import { boundJsonWhitespace } from './bounded-json.ts';
import type { GrammarVocabulary } from './grammar-vocabulary.ts';
import { SequenceGrammar } from './sequence-grammar.ts';
import { initXGrammar, startXGrammar, withXGrammarErrors, XGrammarError, type XGrammarModule } from './xgrammar-loader.ts';

/** An xgrammar instance's compiler, with the module it belongs to. */
interface CompileTarget {
  xgrammar: XGrammarModule;
  compiler: GrammarCompiler;
}

/** A throwaway xgrammar instance with a tiny vocabulary, where untrusted grammars compile first. */
interface Probe extends CompileTarget {
  info: TokenizerInfo;
}

/** Printable ASCII plus a stop token: enough for any grammar to compile against. */
const PROBE_VOCABULARY = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n', '</s>'];

export interface GrammarEngineOptions {
  vocabulary: GrammarVocabulary;
  /** Width of the model's logits rows (config.json vocab_size); may exceed the tokenizer's. */
  logitsSize: number;
  /** Token ids that end a sequence; a grammar allows them exactly where it can end. */
  stopTokenIds: readonly number[];
  /** Compiled grammars kept (least recently used dropped first). Default 64. */
  maxCachedGrammars?: number;
  /**
   * Most whitespace characters between JSON elements (null: unbounded). Bounded by default:
   * a weak or random model otherwise fills max_tokens with spaces and newlines, which any
   * JSON grammar allows. 4 fits a newline and an indent one level deep; larger bounds cost
   * compile time (measured on Qwen3: a bound of 16 made compiles 3-10x slower than 4).
   */
  maxJsonWhitespace?: number | null;
}

const DEFAULT_MAX_CACHED_GRAMMARS = 64;
const DEFAULT_MAX_JSON_WHITESPACE = 4;

export class GrammarEngine {
  private readonly cache = new Map<string, Promise<CompiledGrammar>>();
  /** xgrammar calls run one at a time: compile errors are read from its stderr (see loader). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly maxCachedGrammars: number;
  private readonly maxJsonWhitespace: number | undefined;
  private probe: Promise<Probe> | null = null;

  private constructor(
    private readonly xgrammar: XGrammarModule,
    private readonly tokenizerInfo: TokenizerInfo,
    private readonly compiler: GrammarCompiler,
    readonly logitsSize: number,
    readonly stopTokenIds: readonly number[],
    options: GrammarEngineOptions,
  ) {
    this.maxCachedGrammars = Math.max(1, options.maxCachedGrammars ?? DEFAULT_MAX_CACHED_GRAMMARS);
    const whitespace = options.maxJsonWhitespace === undefined ? DEFAULT_MAX_JSON_WHITESPACE : options.maxJsonWhitespace;
    this.maxJsonWhitespace = whitespace ?? undefined;
  }

  static async create(options: GrammarEngineOptions): Promise<GrammarEngine> {
    const { vocabulary, logitsSize, stopTokenIds } = options;
    if (!Number.isInteger(logitsSize) || logitsSize < vocabulary.encodedTokens.length) {
      throw new RangeError(`logitsSize ${logitsSize} is smaller than the vocabulary (${vocabulary.encodedTokens.length} tokens)`);
    }
    const bad = stopTokenIds.find((id) => !Number.isInteger(id) || id < 0 || id >= logitsSize);
    if (bad !== undefined) throw new RangeError(`stop token id ${bad} is outside [0, ${logitsSize})`);
    const xgrammar = await initXGrammar();
    const info = await xgrammar.TokenizerInfo.createTokenizerInfo(
      vocabulary.encodedTokens,
      vocabulary.vocabType,
      vocabulary.prependSpace,
      logitsSize,
      [...stopTokenIds],
    );
    // xgrammar's own cache is unbounded; ours is bounded and keyed by the spec's text.
    const compiler = await xgrammar.GrammarCompiler.createGrammarCompiler(info, false);
    return new GrammarEngine(xgrammar, info, compiler, logitsSize, [...stopTokenIds], options);
  }

  get numCachedGrammars(): number {
    return this.cache.size;
  }

  /** The compiled grammar for the spec, from the cache when the same text was compiled before. */
  compile(spec: GrammarSpec): Promise<CompiledGrammar> {
    const key = grammarSpecKey(spec);
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.cache.delete(key); // re-insert: most recently used last
      this.cache.set(key, cached);
      return cached;
    }
    const compiled = this.serially(() => this.compileUncached(spec));
    // A failed compile stays cached too: the same bad schema again fails at once, without
    // running (and aborting inside) xgrammar again.
    compiled.catch(() => {});
    this.cache.set(key, compiled);
    this.evictBeyondCapacity();
    return compiled;
  }

  /** A fresh matcher for one sequence, at the grammar's start. */
  async createSequenceGrammar(spec: GrammarSpec): Promise<SequenceGrammar> {
    const compiled = await this.compile(spec);
    const matcher = await this.serially(() => this.xgrammar.GrammarMatcher.createGrammarMatcher(compiled));
    return new SequenceGrammar(matcher, this.stopTokenIds);
  }

  dispose(): void {
    this.probe?.then(
      (p) => [p.compiler, p.info].forEach((o) => o.dispose()),
      () => {},
    );
    this.probe = null;
    for (const compiled of this.cache.values())
      compiled.then(
        (g) => g.dispose(),
        () => {},
      );
    this.cache.clear();
    this.compiler.dispose();
    this.tokenizerInfo.dispose();
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  private evictBeyondCapacity(): void {
    while (this.cache.size > this.maxCachedGrammars) {
      const [oldestKey, oldest] = this.cache.entries().next().value as [string, Promise<CompiledGrammar>];
      this.cache.delete(oldestKey);
      // Matchers made from it keep their own reference inside xgrammar.
      oldest.then(
        (g) => g.dispose(),
        () => {},
      );
    }
  }

  /**
   * Compiles in the probe first: a rejected grammar aborts inside xgrammar and leaks its
   * WebAssembly stack (a few dozen rejections break an instance), so rejections must never
   * reach the model's instance. A probe that rejected something is dropped and replaced.
   */
  private async compileUncached(spec: GrammarSpec): Promise<CompiledGrammar> {
    const probe = await (this.probe ??= this.startProbe());
    try {
      (await withXGrammarErrors(() => this.compileWith(probe, spec))).dispose();
    } catch (err) {
      this.probe = null; // its stack is spent; the garbage collector takes the instance
      throw compileError(spec, err);
    }
    try {
      return await withXGrammarErrors(() => this.compileWith({ xgrammar: this.xgrammar, compiler: this.compiler }, spec));
    } catch (err) {
      throw compileError(spec, err);
    }
  }

  private async startProbe(): Promise<Probe> {
    const xgrammar = await startXGrammar();
    const info = await xgrammar.TokenizerInfo.createTokenizerInfo(PROBE_VOCABULARY, 'raw', false, PROBE_VOCABULARY.length, [
      PROBE_VOCABULARY.length - 1,
    ]);
    return { xgrammar, info, compiler: await xgrammar.GrammarCompiler.createGrammarCompiler(info, false) };
  }

  /** A JSON schema's grammar as compileJSONSchema builds it (strict, whitespace bounded), in EBNF. */
  private async jsonSchemaEbnf(xgrammar: XGrammarModule, schema: unknown): Promise<string> {
    const grammar = await xgrammar.Grammar.fromJSONSchema(JSON.stringify(schema), true, undefined, undefined, true, this.maxJsonWhitespace);
    try {
      return grammar.toString();
    } finally {
      grammar.dispose();
    }
  }

  private async compileWith(target: CompileTarget, spec: GrammarSpec): Promise<CompiledGrammar> {
    const c = target.compiler;
    switch (spec.type) {
      case 'json_object':
        // Any object: the schema {"type": "object"} in non-strict mode (strict would allow only {}).
        return c.compileJSONSchema('{"type":"object"}', true, 2, undefined, false, this.maxJsonWhitespace);
      case 'json_schema':
        if (typeof spec.schema !== 'boolean' && (typeof spec.schema !== 'object' || spec.schema === null || Array.isArray(spec.schema))) {
          throw new GrammarCompileError('json_schema', 'the schema must be a JSON object (or a boolean)');
        }
        return c.compileJSONSchema(JSON.stringify(spec.schema), true, 2, undefined, true, this.maxJsonWhitespace);
      case 'regex':
        // The web build has no regex entry point; a structural tag of one regex is the same grammar.
        return c.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: spec.pattern } });
      case 'grammar':
        return c.compileGrammar(spec.grammar);
      case 'choice':
        return c.compileGrammar(choiceGrammar(spec.choices));
      case 'structural_tag': {
        const format = await boundJsonWhitespace(spec.structuralTag.format, (schema) => this.jsonSchemaEbnf(target.xgrammar, schema));
        return c.compileStructuralTag({ ...spec.structuralTag, format });
      }
    }
  }
}

function compileError(spec: GrammarSpec, err: unknown): GrammarCompileError {
  if (err instanceof GrammarCompileError) return err;
  return new GrammarCompileError(spec.type, err instanceof XGrammarError ? err.reason : String(err));
}
