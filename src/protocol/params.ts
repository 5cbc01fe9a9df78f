/**
 * The shapes of the attack and defense catalogue: what the registries in src/core declare about
 * their attacks and defenses, as plain data. src/protocol/catalogue.ts holds the generated data
 * (scripts/gen-catalogue.ts), so that the extension and the webview can list attacks and ask for a
 * defense's parameters without importing the engine.
 */

/** One parameter of a defense: where it sits in the plan, its CLI flag, its type and default. */
export interface ParamSpec {
  /** Key in the defense's parameter object; a dotted key ("lsh.tables") sits in a nested object. */
  key: string;
  /** Command-line flag, without the dashes. */
  flag: string;
  type: 'integer' | 'number' | 'boolean' | 'enum' | 'numbers';
  values?: readonly string[];
  /** One description per value of an enum. */
  valueDescriptions?: readonly string[];
  min?: number;
  max?: number;
  /** The default, or a sentence saying how it is computed ("calibrated on the reference set"). */
  default?: number | string | boolean | readonly number[];
  defaultText?: string;
  description: string;
  /** The insert-defense wizard asks for it (the others keep their defaults unless edited in the file). */
  ask?: boolean;
  /** Only meaningful when another parameter has this value (k only in vote mode). */
  when?: { key: string; equals: string };
}

export interface CatalogueAttack {
  name: string;
  aliases: readonly string[];
  title: string;
  reference: string;
  gradientFree: boolean;
  norms: readonly string[];
  uses: readonly string[];
  defaults: Readonly<Record<string, number | boolean | string>>;
}

export interface CatalogueDefense {
  kind: string;
  title: string;
  /** One line for pickers and the schema. */
  description: string;
  reference: string;
  params: readonly ParamSpec[];
}

export interface CatalogueThreat {
  name: string;
  description: string;
}

/** A preset of attacks and budgets (src/core/attacks/strength.ts). */
export interface CatalogueStrength {
  name: string;
  description: string;
}

export interface Catalogue {
  attacks: readonly CatalogueAttack[];
  /** Names that stand for several attacks ('autoattack': the standard ensemble). */
  attackGroups: readonly { name: string; members: readonly string[]; description: string }[];
  strengths: readonly CatalogueStrength[];
  defenses: readonly CatalogueDefense[];
  threats: readonly CatalogueThreat[];
}

/** The value at a dotted key of a parameter object ("lsh.tables"). */
export function paramValue(params: Record<string, unknown> | undefined, key: string): unknown {
  let v: unknown = params;
  for (const part of key.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

/** Sets a dotted key, creating nested objects on the way. */
export function setParamValue(params: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let o = params;
  for (const part of parts.slice(0, -1)) o = (o[part] ??= {}) as Record<string, unknown>;
  o[parts[parts.length - 1]] = value;
}

/** What is wrong with one parameter value, or undefined when it fits its spec. */
export function paramProblem(p: ParamSpec, v: unknown): string | undefined {
  const range = (x: number) => (p.min !== undefined && x < p.min) || (p.max !== undefined && x > p.max);
  const bounds = [p.min !== undefined ? `≥ ${p.min}` : '', p.max !== undefined ? `≤ ${p.max}` : ''].filter(Boolean).join(' and ');
  switch (p.type) {
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v) && !range(v) ? undefined : `must be a whole number${bounds ? ` ${bounds}` : ''}`;
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && !range(v) ? undefined : `must be a number${bounds ? ` ${bounds}` : ''}`;
    case 'boolean':
      return typeof v === 'boolean' ? undefined : 'must be true or false';
    case 'enum':
      return typeof v === 'string' && p.values?.includes(v) ? undefined : `must be one of ${p.values?.join(', ')}`;
    case 'numbers':
      return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isFinite(x) && !range(x))
        ? undefined
        : `must be a list of numbers${bounds ? ` ${bounds}` : ''}`;
  }
}

/**
 * Problems of a defense's parameter object against its specs: unknown keys and values that do not
 * fit, each naming `where` ("defense.lesci").
 */
export function paramProblems(specs: readonly ParamSpec[], params: unknown, where: string): string[] {
  if (params === undefined) return [];
  if (!params || typeof params !== 'object' || Array.isArray(params)) return [`"${where}" must be an object`];
  const problems: string[] = [];
  const known = new Set(specs.map((p) => p.key));
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      const key = prefix + k;
      if (known.has(key)) {
        const problem = paramProblem(
          specs.find((p) => p.key === key)!,
          v,
        );
        if (problem) problems.push(`"${where}.${key}" ${problem}, found ${JSON.stringify(v)}`);
      } else if (v && typeof v === 'object' && !Array.isArray(v) && specs.some((p) => p.key.startsWith(`${key}.`))) {
        walk(v as Record<string, unknown>, `${key}.`);
      } else {
        problems.push(`"${where}.${key}" is not a parameter of this defense (known: ${specs.map((p) => p.key).join(', ')})`);
      }
    }
  };
  walk(params as Record<string, unknown>, '');
  return problems;
}
