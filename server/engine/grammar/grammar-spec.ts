// What a constrained sequence must produce, independent of where the request said it
// (response_format, structured_outputs, tool_choice): one of these is compiled per model and
// cached by its text.
import type { StructuralTag } from '@mlc-ai/web-xgrammar';

export type GrammarSpec =
  /** Any JSON object (OpenAI response_format {"type": "json_object"}). */
  | { type: 'json_object' }
  /** A JSON value matching the schema; properties the schema does not name are refused. */
  | { type: 'json_schema'; schema: unknown }
  /** Text matching the regular expression as a whole. */
  | { type: 'regex'; pattern: string }
  /** Text matching an EBNF grammar in xgrammar's dialect (GBNF-like), rule `root` first. */
  | { type: 'grammar'; grammar: string }
  /** Exactly one of the strings. */
  | { type: 'choice'; choices: readonly string[] }
  /** xgrammar's structural tag: free text with constrained tagged regions (tool calls). */
  | { type: 'structural_tag'; structuralTag: StructuralTag };

export type GrammarSpecType = GrammarSpec['type'];

/**
 * The spec cannot be compiled. `reason` is the engine's own words (e.g. `Unsupported type
 * "objec"`); the HTTP edge turns this into a 400 naming the request field that carried it.
 */
export class GrammarCompileError extends Error {
  override name = 'GrammarCompileError';
  constructor(
    readonly specType: GrammarSpecType,
    readonly reason: string,
  ) {
    super(`the ${specType.replace('_', ' ')} cannot be compiled: ${reason}`);
  }
}

/** One text per distinct grammar: the compiled-grammar cache key. */
export function grammarSpecKey(spec: GrammarSpec): string {
  switch (spec.type) {
    case 'json_object':
      return 'json_object';
    case 'json_schema':
      return `json_schema\n${JSON.stringify(spec.schema)}`;
    case 'regex':
      return `regex\n${spec.pattern}`;
    case 'grammar':
      return `grammar\n${spec.grammar}`;
    case 'choice':
      return `choice\n${JSON.stringify(spec.choices)}`;
    case 'structural_tag':
      return `structural_tag\n${JSON.stringify(spec.structuralTag)}`;
  }
}

/** A string as an EBNF literal: quotes, backslashes and control characters escaped. */
export function ebnfLiteral(text: string): string {
  let out = '"';
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '"' || char === '\\') out += `\\${char}`;
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += char;
  }
  return `${out}"`;
}

/** EBNF for exactly one of the choices. */
export function choiceGrammar(choices: readonly string[]): string {
  if (choices.length === 0) throw new GrammarCompileError('choice', 'the list of choices is empty');
  return `root ::= ${choices.map(ebnfLiteral).join(' | ')}`;
}
