// Loads @mlc-ai/web-xgrammar (xgrammar compiled to WebAssembly) in Node.
//
// Why a loader: the package's lib/index.js is a UMD bundle (it calls require() and reads
// __filename) but its package.json says "type": "module", so `import` evaluates it as ESM and
// it fails with "require is not defined". Node's own CommonJS loader runs the same file
// fine, so we compile it here as a CommonJS module at run time: no postinstall step, no
// generated copy on disk. vm.compileFunction was the other candidate; it needs an
// experimental flag (or prints an ExperimentalWarning) for the bundle's `import('module')`,
// while Module#_compile gives dynamic import the default loader like any required file.
import { createRequire, Module } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as XGrammar from '@mlc-ai/web-xgrammar';

export type XGrammarModule = typeof XGrammar;

/** The slice of Node's CommonJS Module we use; _compile is internal but what require() runs. */
interface CompilableModule {
  filename: string;
  paths: string[];
  exports: unknown;
  _compile(source: string, filename: string): void;
}

interface ModuleStatics {
  _nodeModulePaths(dir: string): string[];
}

let source: { path: string; text: string } | null = null;
let initialised: Promise<XGrammarModule> | null = null;
/** Where xgrammar's stderr lines go while a call is being watched; null: to console.error. */
let stderrSink: ((line: string) => void) | null = null;

function isXGrammarModule(value: unknown): value is XGrammarModule {
  if (typeof value !== 'object' || value === null) return false;
  const names = ['TokenizerInfo', 'GrammarCompiler', 'GrammarMatcher', 'Grammar', 'Testings'];
  return names.every((name) => typeof (value as Record<string, unknown>)[name] === 'function');
}

/**
 * A new, independent copy of the xgrammar module: its own bundle evaluation and so, once
 * started, its own WebAssembly instance (objects of one cannot be used with another, nor
 * across threads). Throws when the package is missing or changed shape, naming the file.
 */
export function loadXGrammar(): XGrammarModule {
  if (source === null) {
    const path = createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar');
    source = { path, text: readFileSync(path, 'utf8') };
  }
  const { path, text } = source;
  const module = new Module(path) as unknown as CompilableModule;
  module.filename = path;
  module.paths = (Module as unknown as ModuleStatics)._nodeModulePaths(dirname(path));
  if (typeof module._compile !== 'function') {
    throw new Error(`cannot load ${path}: this Node has no CommonJS Module#_compile`);
  }
  module._compile(text, path);
  if (!isXGrammarModule(module.exports)) {
    throw new Error(`${path} did not export xgrammar's TokenizerInfo, GrammarCompiler and GrammarMatcher`);
  }
  return module.exports;
}

/**
 * Loads xgrammar and starts its WebAssembly instance. The bundle binds its stderr printer to
 * console.error when the instance starts, so console.error is swapped for a forwarder just
 * then: a compile error's reason (printed as "[FATAL] file:line: reason" before the bundle
 * aborts the call with a bare "Aborted()") can then be caught by withXGrammarErrors.
 */
export function initXGrammar(): Promise<XGrammarModule> {
  initialised ??= startXGrammar();
  return initialised;
}

/**
 * A fresh started instance, apart from the shared one. Why: a grammar xgrammar rejects
 * aborts the call without unwinding its WebAssembly stack, so every rejection leaks stack;
 * after a few dozen the instance fails or hangs. Untrusted grammars are therefore compiled
 * first in a throwaway instance (see GrammarEngine), which is replaced once it has failed.
 */
export function startXGrammar(): Promise<XGrammarModule> {
  return (async () => {
    const xgrammar = loadXGrammar();
    const original = console.error;
    const forwarder = (...args: unknown[]): void => {
      if (stderrSink === null) original.apply(console, args);
      else stderrSink(args.map(String).join(' '));
    };
    console.error = forwarder;
    try {
      (await xgrammar.Grammar.fromEBNF('root ::= "a"')).dispose();
    } finally {
      if (console.error === forwarder) console.error = original;
    }
    return xgrammar;
  })();
}

/** A call into xgrammar failed; reason is what xgrammar printed (its message otherwise). */
export class XGrammarError extends Error {
  override name = 'XGrammarError';
  constructor(readonly reason: string) {
    super(reason);
  }
}

const FATAL_PREFIX = /^\[FATAL\]\s+\S+:\d+:\s*/;

/**
 * Runs one xgrammar call with its stderr captured: a failure becomes an XGrammarError
 * carrying xgrammar's own reason, and the lines never reach the server log. Calls must not
 * overlap (the engine runs them one at a time), or one call's lines could land in another's.
 */
export async function withXGrammarErrors<T>(run: () => Promise<T>): Promise<T> {
  await initXGrammar();
  const lines: string[] = [];
  stderrSink = (line) => lines.push(line);
  try {
    return await run();
  } catch (err) {
    const fatal = lines.find((line) => line.startsWith('[FATAL]'));
    // Without a [FATAL] line the bundle threw a C++ exception: a bare pointer, no words.
    const reason = fatal?.replace(FATAL_PREFIX, '').trim() ?? (err instanceof Error ? err.message : 'xgrammar rejected it');
    throw new XGrammarError(reason);
  } finally {
    stderrSink = null;
  }
}
