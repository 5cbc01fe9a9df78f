// The contributed JSON schema for *.rlab.json (media/experiment.schema.json) must describe exactly
// the ExperimentFile type of src/protocol/experiment.ts, which the engine reads: same properties,
// nested objects included. Read with the TypeScript compiler, so a field added to the type fails
// here until the schema (and so the editor's completion) knows it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ROOT } from '../../scripts/code-server.mjs';

const schema = JSON.parse(readFileSync(path.join(ROOT, 'media', 'experiment.schema.json'), 'utf8'));
const file = path.join(ROOT, 'src', 'protocol', 'experiment.ts');
const program = ts.createProgram([file], { strict: true, noEmit: true });
const checker = program.getTypeChecker();
const source = program.getSourceFile(file);

function typeOf(name) {
  let found;
  ts.forEachChild(source, (node) => {
    if ((ts.isInterfaceDeclaration(node) || ts.isTypeAliasDeclaration(node)) && node.name.text === name) found = checker.getTypeAtLocation(node);
  });
  assert.ok(found, `${name} in experiment.ts`);
  return found;
}

function resolve(s) {
  return s?.$ref ? resolve(schema.definitions[s.$ref.split('/').pop()]) : s;
}

/** Compares a TypeScript object type with a schema object, recursing into nested object properties. */
function compare(type, node, where) {
  const s = resolve(node);
  const props = checker.getPropertiesOfType(checker.getNonNullableType(type));
  const names = props.map((p) => p.name).sort();
  const schemaNames = Object.keys(s.properties ?? {}).filter((k) => k !== '$schema').sort();
  assert.deepEqual(schemaNames, names, `properties of ${where}`);
  for (const p of props) {
    const t = checker.getNonNullableType(checker.getTypeOfSymbol(p));
    const isPlainObject = t.flags & ts.TypeFlags.Object && !checker.isArrayType(t) && checker.getPropertiesOfType(t).length > 0;
    if (isPlainObject) compare(t, s.properties[p.name], `${where}.${p.name}`);
  }
}

test('media/experiment.schema.json describes ExperimentFile exactly', () => {
  compare(typeOf('ExperimentFile'), schema, 'ExperimentFile');
  assert.deepEqual(schema.required, ['model', 'data']);
});
