// Structural tags (tool calls, output after reasoning) hold JSON schemas that xgrammar turns
// into grammars allowing any amount of whitespace between JSON elements: a weak or random
// model then fills max_tokens with spaces inside a call. Each json_schema element is replaced
// here by the grammar xgrammar's own JSON-schema converter writes with the engine's
// whitespace bound, the same grammar a response_format schema compiles to.
import type { StructuralTagFormat, TagFormat } from '@mlc-ai/web-xgrammar';

/** The EBNF of a JSON schema (strict, whitespace bounded as the engine bounds it). */
export type JsonSchemaToEbnf = (schema: unknown) => Promise<string>;

async function boundTag(tag: TagFormat, toEbnf: JsonSchemaToEbnf): Promise<TagFormat> {
  return { ...tag, content: await boundJsonWhitespace(tag.content, toEbnf) };
}

export async function boundJsonWhitespace(format: StructuralTagFormat, toEbnf: JsonSchemaToEbnf): Promise<StructuralTagFormat> {
  switch (format.type) {
    case 'json_schema':
      return { type: 'grammar', grammar: await toEbnf(format.json_schema) };
    case 'tag':
      return boundTag(format, toEbnf);
    case 'sequence':
    case 'or':
      return { ...format, elements: await Promise.all(format.elements.map((e) => boundJsonWhitespace(e, toEbnf))) };
    case 'triggered_tags':
    case 'tags_with_separator':
      return { ...format, tags: await Promise.all(format.tags.map((t) => boundTag(t, toEbnf))) };
    default:
      return format;
  }
}
