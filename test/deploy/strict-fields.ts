// Unknown fields in a manifest, found through the TypeScript declarations of kubernetes-models.
// Its schema validators accept any extra property (as kubectl's client-side validation once
// did), so a misspelt `readinessProbe` or `terminationGracePeriodSecond` would pass them and
// be silently dropped by the API server (or refused, under strict field validation). The
// declarations name every field of every type: walking a manifest along them finds the
// fields no type has.
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export interface ModelType {
  /** The module that declares it, e.g. 'kubernetes-models/apps/v1/Deployment'. */
  module: string;
  /** The interface, e.g. 'IDeployment'. */
  name: string;
}

/** The declared types, checked in one TypeScript program. */
export function strictFieldChecker(types: readonly ModelType[]): (manifest: unknown, type: ModelType) => string[] {
  // A virtual file at the repository root, so that its imports resolve from node_modules.
  const fileName = fileURLToPath(new URL('../../__manifest_types__.ts', import.meta.url));
  const source = types
    .map((t, i) => `import type { ${t.name} as T${i} } from '${t.module}';\nexport declare const v${i}: T${i};`)
    .join('\n');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language) =>
    name === fileName ? ts.createSourceFile(name, source, language) : getSourceFile(name, language);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  const errors = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (errors.length > 0) throw new Error(`cannot load the model declarations: ${errors.join('; ')}`);
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(fileName)!;
  const declared = new Map<string, ts.Type>();
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    const declaration = statement.declarationList.declarations[0];
    const index = Number(declaration.name.getText(file).slice(1));
    declared.set(`${types[index].module}#${types[index].name}`, checker.getTypeAtLocation(declaration));
  }

  const walk = (value: unknown, type: ts.Type, path: string, found: string[]): void => {
    if (value === null || typeof value !== 'object') return;
    const target = checker.getNonNullableType(type);
    if (target.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    const members = target.isUnion() ? target.types : [target];
    if (Array.isArray(value)) {
      const element = members.map((m) => checker.getIndexTypeOfType(m, ts.IndexKind.Number)).find((t) => t !== undefined);
      if (element !== undefined) value.forEach((item, i) => walk(item, element, `${path}[${i}]`, found));
      return;
    }
    // A map (labels, annotations, resources) takes any key.
    const indexed = members.map((m) => checker.getIndexTypeOfType(m, ts.IndexKind.String)).find((t) => t !== undefined);
    for (const [key, child] of Object.entries(value)) {
      const property = members.map((m) => checker.getPropertyOfType(m, key)).find((p) => p !== undefined);
      if (property !== undefined) walk(child, checker.getTypeOfSymbol(property), `${path}.${key}`, found);
      else if (indexed !== undefined) walk(child, indexed, `${path}.${key}`, found);
      else found.push(`${path}.${key}`);
    }
  };

  return (manifest, type) => {
    const root = declared.get(`${type.module}#${type.name}`);
    if (root === undefined) throw new Error(`${type.name} was not declared to the checker`);
    const found: string[] = [];
    walk(manifest, root, '', found);
    return found;
  };
}
