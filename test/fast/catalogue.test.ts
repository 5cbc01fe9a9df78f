// The files derived from the attack and defense registries are up to date, and they agree with
// the TypeScript types the engine reads and with the commands package.json contributes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { ATTACK_NAMES } from '../../src/core/attacks/registry';
import { buildCatalogue, catalogueSource } from '../../src/core/catalogue';
import { DEFENSE_KINDS } from '../../src/core/defenses/registry';
import { experimentSchema } from '../../src/protocol/experiment-schema';
import { experimentProblems } from '../../src/protocol/experiment-file';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');

test('src/protocol/catalogue.ts and media/experiment.schema.json are what the registries generate (npm run gen)', () => {
  const catalogue = buildCatalogue();
  assert.equal(read('src/protocol/catalogue.ts'), catalogueSource(catalogue), 'src/protocol/catalogue.ts is stale: run npm run gen');
  assert.deepEqual(JSON.parse(read('media/experiment.schema.json')), experimentSchema(catalogue), 'media/experiment.schema.json is stale: run npm run gen');
});

test('the schema lists every attack, defense and defense parameter of the registries', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON schema walked by key
  const schema = experimentSchema(buildCatalogue()) as any;
  assert.deepEqual(schema.definitions.attacks.properties.names.items.enum, [...ATTACK_NAMES, 'autoattack']);
  assert.deepEqual(schema.definitions.defense.properties.kind.enum, [...DEFENSE_KINDS]);
  for (const d of buildCatalogue().defenses) {
    const props = schema.definitions.defense.properties[d.kind].properties;
    for (const p of d.params) {
      const [head, tail] = p.key.split('.');
      assert.ok(tail ? props[head].properties[tail] : props[head], `${d.kind}.${p.key} in the schema`);
    }
  }
});

test("package.json's per-defense insert commands all name defenses of the registry; the generic one reaches every defense", () => {
  const pkg = JSON.parse(read('package.json'));
  const all: string[] = pkg.contributes.commands.map((c: { command: string }) => c.command);
  assert.ok(all.includes('robustnessLab.insertDefense'), 'Insert Defense Here… (it offers every defense of the catalogue)');
  const perKind = all.filter((c) => /^robustnessLab\.insert[A-Z]/.test(c) && c !== 'robustnessLab.insertDefense');
  const known = DEFENSE_KINDS.map((k) => `robustnessLab.insert${k[0].toUpperCase()}${k.slice(1)}`);
  for (const c of perKind) assert.ok(known.includes(c), `${c} names no defense of the registry`);
});

test('the experiment parser checks attack names and defense parameters against the catalogue', () => {
  const base = { model: 'm.onnx', data: 'd.npy' };
  assert.deepEqual(experimentProblems({ ...base, attacks: { names: ['pgd', 'i-fgsm'], eps: [0.1], norm: 'linf' } }), []);
  assert.match(experimentProblems({ ...base, attacks: { names: ['pgdd'], eps: [0.1], norm: 'linf' } }).join(), /"pgdd", not an attack/);
  const defense = { kind: 'retrieval', layer: 't', reference: 'r' };
  assert.deepEqual(experimentProblems({ ...base, defense: { ...defense, retrieval: { neighbours: 5, lsh: { tables: 4 } } } }), []);
  assert.match(experimentProblems({ ...base, defense: { ...defense, retrieval: { neighbours: 0 } } }).join(), /neighbours" must be a whole number ≥ 1/);
  assert.match(experimentProblems({ ...base, defense: { ...defense, retrieval: { lsh: { tables: 'x' } } } }).join(), /lsh\.tables/);
  assert.match(experimentProblems({ ...base, defense: { ...defense, lesci: { mode: 'vq' } } }).join(), /another defense/);
});

// The schema's properties equal the TypeScript types of src/protocol/experiment.ts (read with the
// compiler), so a field added to a type fails here until the schema generator knows it. A
// defense's own parameter object is checked against its registry spec above instead.
test('media/experiment.schema.json describes ExperimentFile exactly', () => {
  const schema = JSON.parse(read('media/experiment.schema.json'));
  const file = path.join(ROOT, 'src', 'protocol', 'experiment.ts');
  const program = ts.createProgram([file], { strict: true, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  let experimentType: ts.Type | undefined;
  ts.forEachChild(source, (node) => {
    if (ts.isInterfaceDeclaration(node) && node.name.text === 'ExperimentFile') experimentType = checker.getTypeAtLocation(node);
  });
  assert.ok(experimentType);
  type SchemaNode = { $ref?: string; properties?: Record<string, SchemaNode> };
  const resolve = (s: SchemaNode): SchemaNode => (s?.$ref ? resolve(schema.definitions[s.$ref.split('/').pop()!]) : s);
  const compare = (type: ts.Type, node: SchemaNode | undefined, where: string) => {
    const s = resolve(node ?? {});
    const props = checker.getPropertiesOfType(checker.getNonNullableType(type));
    const ignored = where === 'ExperimentFile.defense' ? new Set<string>(DEFENSE_KINDS) : new Set<string>();
    const schemaNames = Object.keys(s.properties ?? {})
      .filter((k) => k !== '$schema' && !ignored.has(k))
      .sort();
    assert.deepEqual(schemaNames, props.map((p) => p.name).sort(), `properties of ${where}`);
    for (const p of props) {
      const t = checker.getNonNullableType(checker.getTypeOfSymbol(p));
      if (t.flags & ts.TypeFlags.Object && !checker.isArrayType(t) && checker.getPropertiesOfType(t).length > 0)
        compare(t, s.properties?.[p.name], `${where}.${p.name}`);
    }
  };
  compare(experimentType!, schema, 'ExperimentFile');
  assert.deepEqual(schema.required, ['model', 'data']);
});
