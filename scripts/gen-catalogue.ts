// Writes the files derived from the attack and defense registries: src/protocol/catalogue.ts and
// media/experiment.schema.json. Run with `npm run gen`; test/fast/catalogue.test.ts fails when stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { buildCatalogue, catalogueSource } from '../src/core/catalogue';
import { experimentSchema } from '../src/protocol/experiment-schema';

const root = path.resolve(__dirname, '..');
const catalogue = buildCatalogue();
writeFileSync(path.join(root, 'src/protocol/catalogue.ts'), catalogueSource(catalogue));
writeFileSync(path.join(root, 'media/experiment.schema.json'), JSON.stringify(experimentSchema(catalogue), null, 2) + '\n');
console.log('Wrote src/protocol/catalogue.ts and media/experiment.schema.json');
