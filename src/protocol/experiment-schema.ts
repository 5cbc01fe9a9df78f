/**
 * The JSON schema of experiment files (media/experiment.schema.json), generated from the catalogue
 * so that the editor's validation and completion list exactly the registries' attacks, defenses and
 * parameters. scripts/gen-catalogue.ts writes it; a unit test fails when the file is stale.
 */
import type { Catalogue, CatalogueDefense, ParamSpec } from './params';

function paramSchema(p: ParamSpec): Record<string, unknown> {
  const description = `${p.description}${p.default !== undefined ? ` Default: ${Array.isArray(p.default) ? p.default.join(', ') : String(p.default)}.` : p.defaultText ? ` Default: ${p.defaultText}.` : ''}`;
  const bounds = { ...(p.min !== undefined ? { minimum: p.min } : {}), ...(p.max !== undefined ? { maximum: p.max } : {}) };
  switch (p.type) {
    case 'integer':
    case 'number':
      return { type: p.type, ...bounds, ...(p.default !== undefined ? { default: p.default } : {}), description };
    case 'boolean':
      return { type: 'boolean', ...(p.default !== undefined ? { default: p.default } : {}), description };
    case 'enum':
      return {
        enum: p.values,
        ...(p.valueDescriptions ? { enumDescriptions: p.valueDescriptions } : {}),
        ...(p.default !== undefined ? { default: p.default } : {}),
        description,
      };
    case 'numbers':
      return { type: 'array', minItems: 1, items: { type: 'number', ...bounds }, ...(p.default !== undefined ? { default: p.default } : {}), description };
  }
}

/** A defense's parameter object; dotted keys ("lsh.tables") become nested objects. */
function paramsSchema(d: CatalogueDefense): Record<string, unknown> {
  const root: Record<string, unknown> = { type: 'object', description: `${d.title} parameters (${d.reference}).`, properties: {}, additionalProperties: false };
  for (const p of d.params) {
    const parts = p.key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const props = node.properties as Record<string, Record<string, unknown>>;
      node = props[part] ??= { type: 'object', properties: {}, additionalProperties: false };
    }
    (node.properties as Record<string, unknown>)[parts[parts.length - 1]] = paramSchema(p);
  }
  return root;
}

export function experimentSchema(c: Catalogue): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://robustness-lab/experiment.schema.json',
    title: 'Robustness Lab experiment (*.rlab.json)',
    description:
      'What to evaluate: a model, test data, attacks and optionally a defense at a layer. Paths are relative to this file. Runtime settings (execution provider, threads, batch size) come from the robustnessLab.* settings.',
    type: 'object',
    required: ['model', 'data'],
    properties: {
      $schema: {
        type: 'string',
      },
      name: {
        type: 'string',
        description: 'Shown in the Experiments view and in result file names.',
      },
      model: {
        type: 'string',
        pattern: '\\.(onnx|json)$',
        description: 'The classifier, relative to this file: an ONNX model, or a TensorFlow.js model.json.',
      },
      data: {
        type: 'string',
        description: 'Test images: IDX (raw or .gz), .npy, .npz, or a folder with one sub-folder of PNG/JPEG images per class.',
      },
      labels: {
        type: 'string',
        description: 'Labels for `data` (IDX, .npy or a text file with one integer per line). Omit for NPZ files and image folders that hold their labels.',
      },
      limit: {
        type: 'integer',
        minimum: 1,
        description: 'Evaluate only the first N samples.',
      },
      seed: {
        type: 'integer',
        minimum: 0,
        default: 0,
        description: 'Seeds random starts, probes and targets: the same experiment and seed give the same numbers on the CPU.',
      },
      attacks: {
        $ref: '#/definitions/attacks',
      },
      defense: {
        $ref: '#/definitions/defense',
      },
      fooling: {
        $ref: '#/definitions/fooling',
      },
      unknown: {
        $ref: '#/definitions/unknown',
      },
    },
    additionalProperties: false,
    definitions: {
      attacks: {
        type: 'object',
        description: 'Attacks to run after the clean evaluation: every attack at every epsilon.',
        required: ['eps', 'norm'],
        properties: {
          names: {
            type: 'array',
            // Empty when a strength preset names the attacks (the parser requires one or the other).
            uniqueItems: true,
            items: {
              enum: [...c.attacks.map((a) => a.name), ...c.attackGroups.map((g) => g.name)],
              enumDescriptions: [...c.attacks.map((a) => `${a.title}: ${a.reference}`), ...c.attackGroups.map((g) => g.description)],
            },
          },
          eps: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'number',
              minimum: 0,
            },
            description: 'Perturbation budgets, on inputs scaled to [0, 1].',
          },
          norm: {
            enum: ['linf', 'l2'],
            default: 'linf',
            description: "The threat model's norm.",
          },
          steps: {
            type: 'integer',
            minimum: 1,
            description: 'bim, pgd, mifgsm: gradient steps (per restart).',
          },
          stepSize: {
            type: 'number',
            exclusiveMinimum: 0,
            description: 'Absolute step size; default a multiple of eps / steps per attack.',
          },
          restarts: {
            type: 'integer',
            minimum: 1,
            description: 'pgd: random restarts.',
          },
          randomStart: {
            type: 'boolean',
            description: 'pgd, spsa: start at a random point of the eps-ball.',
          },
          queries: {
            type: 'integer',
            minimum: 1,
            description: 'spsa, square: forward passes per sample.',
          },
          loss: {
            enum: ['ce', 'cw'],
            description: 'Loss gradient attacks follow: cross-entropy or the Carlini-Wagner margin.',
          },
          targeted: {
            type: 'boolean',
            description: 'Targeted towards a seeded random label different from the true one.',
          },
          sequential: {
            type: 'boolean',
            description:
              'Per eps, each attack runs only on the samples no earlier attack broke (as AutoAttack runs its ensemble); accuracies are then cumulative.',
          },
          strength: {
            enum: c.strengths.map((x) => x.name),
            enumDescriptions: c.strengths.map((x) => x.description),
            description: 'A preset of attacks and budgets; names and budgets given here override it.',
          },
        },
        additionalProperties: false,
      },
      defense: {
        type: 'object',
        description: 'A defense inserted after a layer, fitted on reference images, evaluated beside the undefended model.',
        required: ['kind', 'layer', 'reference'],
        properties: {
          kind: { enum: c.defenses.map((d) => d.kind), enumDescriptions: c.defenses.map((d) => `${d.title}: ${d.description} (${d.reference})`) },
          layer: {
            type: 'string',
            description: 'The tensor T the defense goes after: an insertion point (shown with a target in the Models view); the model input is allowed.',
          },
          reference: {
            type: 'string',
            description: 'Reference images the defense is fitted on (e.g. training images), relative to this file.',
          },
          referenceLabels: {
            type: 'string',
            description: 'Labels of the reference images.',
          },
          referenceLimit: {
            type: 'integer',
            minimum: 1,
            description: 'Fit on only the first N reference images.',
          },
          threats: {
            type: 'array',
            uniqueItems: true,
            items: {
              enum: c.threats.map((t) => t.name),
              enumDescriptions: c.threats.map((t) => t.description),
            },
            description: "Threat models to attack the defended model under (default: all). The defense's robust accuracy is the worst over those run.",
          },
          seed: {
            type: 'integer',
            minimum: 0,
            description: "Seed of the fit (initial weights, projections, shuffling); default: the experiment's seed.",
          },
          ...Object.fromEntries(c.defenses.map((d) => [d.kind, paramsSchema(d)])),
        },
        additionalProperties: false,
      },
      fooling: {
        type: 'object',
        description:
          'The fooling generator of the dAE paper: per target class and seed, train a layer from a fixed random input to make the classifier output the target with high confidence; on the undefended model and the dAE-scaled one.',
        properties: {
          targets: {
            type: 'array',
            items: {
              type: 'integer',
              minimum: 0,
            },
            description: 'Target classes (default: every class).',
          },
          seeds: {
            type: 'integer',
            minimum: 1,
            description: 'Seeds per target (default 1).',
          },
          maxSteps: {
            type: 'integer',
            minimum: 1,
            description: 'Step limit per run (default 1000).',
          },
          thresholds: {
            type: 'array',
            items: {
              type: 'number',
              minimum: 0,
              maximum: 1,
            },
            description: 'Confidence thresholds to reach (default 0.9 and 0.99).',
          },
          learningRate: {
            type: 'number',
            exclusiveMinimum: 0,
          },
        },
        additionalProperties: false,
      },
      unknown: {
        type: 'object',
        description:
          'Open-set recognition (dAE paper): images of classes the model never learnt. Reports, for the undefended max softmax and the dAE confidence, the rejection rate of these images and the accuracy on accepted test images per threshold, AUROC and FPR at 95% TPR.',
        required: ['data'],
        properties: {
          data: {
            type: 'string',
            description: 'The unknown images, relative to this file: IDX (raw or .gz), .npy, .npz, or an image folder. Labels are not needed.',
          },
          labels: {
            type: 'string',
            description: 'Labels of the unknown images, only to check the file pairs with them (they are not used).',
          },
          limit: {
            type: 'integer',
            minimum: 1,
            description: 'Use only the first N unknown images.',
          },
          thresholds: {
            type: 'array',
            items: { type: 'number', minimum: 0, maximum: 1 },
            description: "Thresholds on the top probability (default 0, 0.5, 0.9, 0.99, plus the dAE's own thresholds).",
          },
        },
        additionalProperties: false,
      },
    },
  };
}
