/**
 * Corpus specifications (YAML or JSON): which runs a training, calibration or test corpus holds —
 * seeds, protocols, run length, how many separated fault episodes per run and which fault
 * families they draw from, load levels, background noise, the fault-free share. The generator
 * (generate.ts) turns a spec into scenarios; the same spec and seeds give the same scenarios.
 *
 * Validated with zod; every problem names its field, e.g. `episodes.duration_ms: min 900 > max 300`.
 * Ranges are written `[min, max]`, `{ min, max }` or as one number (a fixed value). docs/corpus.md
 * is the reference.
 */
import { fieldErrorsOf } from '../../core/field-errors.ts';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { PROTOCOLS, type Protocol } from '../../core/trace-schema.ts';
import { EPAXOS_BEYOND_KINDS } from './fault-model.ts';

/** A closed interval; `min === max` is a fixed value. */
export interface Range {
  readonly min: number;
  readonly max: number;
}

interface RangeBounds {
  readonly int?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** Whether `min` itself is allowed (false: values must be > min). */
  readonly minInclusive?: boolean;
}

/** `[min, max]` or a single number, checked against the bounds, as a Range. */
function range(what: string, bounds: RangeBounds = {}) {
  const { int = false, min, max, minInclusive = true } = bounds;
  let value = z.number({ error: `${what}: expected a number` });
  if (int) value = value.int(`${what}: expected an integer`);
  if (min !== undefined) value = minInclusive ? value.min(min, `${what}: expected >= ${min}`) : value.gt(min, `${what}: expected > ${min}`);
  if (max !== undefined) value = value.max(max, `${what}: expected <= ${max}`);
  // `{ min, max }` too: a validated spec (as corpus.json records it) validates again to itself.
  return z
    .union([value, z.tuple([value, value]), z.strictObject({ min: value, max: value })], { error: `${what}: expected a number or [min, max]` })
    .transform((v): Range => (typeof v === 'number' ? { min: v, max: v } : Array.isArray(v) ? { min: v[0], max: v[1] } : v))
    .refine((r) => r.min <= r.max, { error: `${what}: min must be <= max` });
}

const name = z.string({ error: 'expected a string' }).min(1, 'must not be empty').max(40, 'must be at most 40 characters').regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only');
const weight = z.number({ error: 'weight: expected a number' }).positive('weight: expected > 0').default(1);
const rate = (what: string) => range(what, { min: 0, max: 1 });
const positiveMs = (what: string) => range(what, { int: true, min: 0, minInclusive: false });
/** How many nodes a fault targets (capped per run: at most the run's faulty set, at most f for a partition's minority). */
const nodeCount = range('nodes', { int: true, min: 1, max: 64 }).optional();

/**
 * Which nodes a fault acts on. `faulty`: drawn from the run's faulty set (chosen once per run,
 * at most f nodes, so crashes and Byzantine faults stay within the fault model); `node`: any
 * node(s); `all`: every message (network kinds); `link`: one directed link (delay); `leader`:
 * the leader when the fault starts (PBFT equivocation), which counts as one more faulty node.
 */
export const TARGETS = ['faulty', 'node', 'all', 'link', 'leader'] as const;
export type Target = (typeof TARGETS)[number];
const target = (allowed: readonly Target[]) => z.enum(allowed, { error: `target: expected one of ${allowed.join(', ')}` }).optional();

const templateBase = {
  /** Overrides the episode's duration range for this fault. */
  duration_ms: positiveMs('duration_ms').optional(),
};

const templateSchemas = [
  z.strictObject({ kind: z.literal('crash'), ...templateBase, target: target(['faulty']), nodes: nodeCount, amnesia: z.boolean({ error: 'amnesia: expected true or false' }).optional() }),
  z.strictObject({ kind: z.literal('partition'), ...templateBase, nodes: nodeCount }),
  z.strictObject({ kind: z.literal('delay'), ...templateBase, target: target(['node', 'all', 'link']), nodes: nodeCount, delay_ms: range('delay_ms', { min: 0, minInclusive: false }) }),
  z.strictObject({ kind: z.literal('drop'), ...templateBase, target: target(['node', 'all']), nodes: nodeCount, rate: rate('rate') }),
  z.strictObject({ kind: z.literal('duplicate'), ...templateBase, target: target(['node', 'all']), nodes: nodeCount, rate: rate('rate') }),
  z.strictObject({
    kind: z.literal('reorder'),
    ...templateBase,
    target: target(['node', 'all']),
    nodes: nodeCount,
    rate: rate('rate'),
    delay_ms: range('delay_ms', { min: 0, minInclusive: false }).optional(),
  }),
  /**
   * A clock fault: a step (`skew_ms`) and/or a rate (`drift_ppm`), each given as its magnitude
   * with the sign drawn at random. PBFT's timers are monotonic, so a step alone changes nothing
   * it decides: give a drift for an effect (scenarios.md, clocks).
   */
  z
    .strictObject({
      kind: z.literal('clock_skew'),
      ...templateBase,
      target: target(['node']),
      nodes: nodeCount,
      skew_ms: range('skew_ms', { min: 0 }).default({ min: 0, max: 0 }),
      drift_ppm: range('drift_ppm', { min: 0, max: 999_999 }).default({ min: 0, max: 0 }),
    })
    .refine((t) => t.skew_ms.min > 0 || t.drift_ppm.min > 0, { error: 'a clock fault needs skew_ms or drift_ppm with a minimum above 0', path: ['drift_ppm'] }),
  /** `leader`: whoever leads when the episode starts (PBFT's primary; the scenario's `nodes: leader`). */
  z.strictObject({ kind: z.literal('equivocation'), ...templateBase, target: target(['faulty', 'leader']), nodes: nodeCount }),
  z.strictObject({
    kind: z.literal('forged_vote'),
    ...templateBase,
    target: target(['faulty']),
    nodes: nodeCount,
    behaviour: z.enum(['impersonate', 'wrong_digest', 'both', 'random'], { error: 'behaviour: expected impersonate, wrong_digest, both or random' }).default('random'),
  }),
  z.strictObject({ kind: z.literal('withheld_vote'), ...templateBase, target: target(['faulty']), nodes: nodeCount, rate: rate('rate').default({ min: 1, max: 1 }) }),
  z.strictObject({ kind: z.literal('replay'), ...templateBase, target: target(['faulty']), nodes: nodeCount, rate: rate('rate').default({ min: 0.2, max: 0.2 }) }),
  z.strictObject({ kind: z.literal('silent'), ...templateBase, target: target(['faulty']), nodes: nodeCount }),
  z.strictObject({ kind: z.literal('state_corruption'), ...templateBase, target: target(['faulty']), nodes: nodeCount }),
] as const;

const templateSchema = z.discriminatedUnion('kind', templateSchemas, {
  error: `kind: expected one of ${templateSchemas.map((s) => s.shape.kind.value).join(', ')}`,
});

/** A scenario family: one fault, or a small declared mix started together, as one episode. */
const familySchema = z.strictObject({
  name,
  description: z.string({ error: 'expected a string' }).optional(),
  weight,
  /** Only for these protocols (default: every protocol of the corpus whose fault model admits it). */
  protocols: z.array(z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` })).min(1, 'expected at least one protocol').optional(),
  faults: z.array(templateSchema, { error: 'expected an array of faults' }).min(1, 'expected at least one fault').max(4, 'a mix holds at most 4 faults'),
});

/** A load level: the client workload, each parameter drawn from its range per run. */
const loadSchema = z.strictObject({
  name,
  weight,
  clients: range('clients', { int: true, min: 1, max: 256 }),
  think_ms: range('think_ms', { min: 0 }),
  keys: range('keys', { int: true, min: 1, max: 100_000 }),
  /** Shares of the operation mix; writes are the rest (1 − read − cas). */
  read_share: rate('read_share'),
  cas_share: rate('cas_share').default({ min: 0, max: 0 }),
});

/** Background noise of the network, in every run (fault-free ones too), drawn per run. */
const noiseSchema = z
  .strictObject({
    latency_us: range('latency_us', { min: 0, minInclusive: false }).default({ min: 300, max: 300 }),
    jitter: range('jitter', { min: 0, max: 3 }).default({ min: 0.35, max: 0.35 }),
    tail_rate: rate('tail_rate').default({ min: 0.01, max: 0.01 }),
    tail_us: range('tail_us', { min: 0 }).default({ min: 4000, max: 4000 }),
    drop: rate('drop').default({ min: 0, max: 0 }),
    duplicate: rate('duplicate').default({ min: 0, max: 0 }),
    reorder: rate('reorder').default({ min: 0, max: 0 }),
  })
  .prefault({});

const episodesSchema = z.strictObject({
  /** Episodes per faulty run (fewer when the drawn ones do not fit in the run; at least one). */
  count: range('count', { int: true, min: 1, max: 100 }),
  /** Each fault's duration, drawn independently of the run's length. */
  duration_ms: positiveMs('duration_ms'),
  /** Normal traffic before the first episode, at least. */
  lead_ms_min: z.number({ error: 'lead_ms_min: expected a number' }).int('lead_ms_min: expected an integer').nonnegative('lead_ms_min: expected >= 0'),
  /** Between one episode's end and the next one's start, at least. */
  gap_ms_min: z.number({ error: 'gap_ms_min: expected a number' }).int('gap_ms_min: expected an integer').nonnegative('gap_ms_min: expected >= 0'),
  /** After the last episode's end, before the run's duration_ms, at least (clients keep submitting). */
  tail_ms_min: z.number({ error: 'tail_ms_min: expected a number' }).int('tail_ms_min: expected an integer').nonnegative('tail_ms_min: expected >= 0'),
  /** After each episode: counted neither as fault nor as normal in the planned window count (the cluster recovers). */
  recovery_ms: z.number({ error: 'recovery_ms: expected a number' }).int('recovery_ms: expected an integer').nonnegative('recovery_ms: expected >= 0').default(0),
});

const seedSchema = z.number({ error: 'expected a number' }).int('expected an integer').min(0, 'expected >= 0').max(2 ** 31 - 1, `expected <= ${2 ** 31 - 1}`);
const seedsSchema = z.union(
  [
    z.strictObject({ base: seedSchema, count: z.number({ error: 'count: expected a number' }).int('count: expected an integer').positive('count: expected > 0').max(100_000, 'count: expected <= 100000') }),
    z.array(seedSchema).min(1, 'expected at least one seed'),
  ],
  { error: 'expected { base, count } or a list of seeds' },
);

export const corpusSpecSchema = z
  .strictObject({
    name,
    description: z.string({ error: 'expected a string' }).optional(),
    protocols: z.array(z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` }), { error: 'expected an array of protocols' }).min(1, 'expected at least one protocol'),
    /** Replicas per protocol (default 4 for PBFT, 5 for EPaxos). */
    nodes: z.strictObject({ pbft: z.number().int().optional(), epaxos: z.number().int().optional() }).prefault({}),
    seeds: seedsSchema,
    duration_ms: z.number({ error: 'expected a number' }).int('expected an integer').positive('expected > 0').max(600_000, 'expected <= 600000'),
    /** Bound on the quiet period after the run's duration, in which pending requests must finish. */
    quiet_ms: z.number({ error: 'expected a number' }).int('expected an integer').positive('expected > 0').default(20_000),
    fault_free_share: z.number({ error: 'expected a number' }).min(0, 'expected >= 0').max(1, 'expected <= 1'),
    /** Crashes and Byzantine faults on at most f nodes per run, and no kind the protocol cannot tolerate. */
    within_fault_model: z.boolean({ error: 'expected true or false' }).default(true),
    episodes: episodesSchema,
    families: z.array(familySchema, { error: 'expected an array of families' }).default([]),
    loads: z.array(loadSchema, { error: 'expected an array of load levels' }).min(1, 'expected at least one load level'),
    noise: noiseSchema,
  })
  .superRefine((spec, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    const { pbft, epaxos } = spec.nodes;
    if (pbft !== undefined && (pbft < 4 || (pbft - 1) % 3 !== 0)) issue(['nodes', 'pbft'], 'PBFT needs n = 3f+1 replicas (4, 7, 10, ...)');
    if (epaxos !== undefined && (epaxos < 3 || epaxos % 2 === 0)) issue(['nodes', 'epaxos'], 'EPaxos needs n = 2f+1 replicas (3, 5, 7, ...)');
    if (new Set(spec.protocols).size !== spec.protocols.length) issue(['protocols'], 'lists a protocol twice');
    if (Array.isArray(spec.seeds)) {
      const seen = new Set<number>();
      spec.seeds.forEach((seed, i) => {
        if (seen.has(seed)) issue(['seeds', i], `seed ${seed} is listed twice`);
        seen.add(seed);
      });
    } else if (spec.seeds.base + spec.seeds.count - 1 > 2 ** 31 - 1) {
      issue(['seeds', 'count'], `base + count - 1 must be <= ${2 ** 31 - 1}`);
    }
    const e = spec.episodes;
    const shortest = e.lead_ms_min + e.duration_ms.min + e.tail_ms_min;
    if (spec.fault_free_share < 1 && shortest > spec.duration_ms) {
      issue(['duration_ms'], `${spec.duration_ms} ms cannot hold one episode: lead_ms_min + episodes.duration_ms min + tail_ms_min = ${shortest} ms`);
    }
    if (e.recovery_ms > e.gap_ms_min) issue(['episodes', 'recovery_ms'], `must be <= gap_ms_min (${e.gap_ms_min}), or no normal traffic is left between episodes`);
    if (e.recovery_ms > e.tail_ms_min) issue(['episodes', 'recovery_ms'], `must be <= tail_ms_min (${e.tail_ms_min}), or no normal traffic is left after the last episode`);
    uniqueNames(spec.families, ['families'], issue);
    uniqueNames(spec.loads, ['loads'], issue);
    spec.loads.forEach((load, i) => {
      if (load.read_share.max + load.cas_share.max > 1) issue(['loads', i, 'cas_share'], 'read_share max + cas_share max must be <= 1 (writes are the rest)');
    });
    spec.families.forEach((family, i) => {
      family.protocols?.forEach((protocol, j) => {
        if (!spec.protocols.includes(protocol)) issue(['families', i, 'protocols', j], `${protocol} is not one of the corpus's protocols`);
      });
      family.faults.forEach((fault, j) => {
        if ('target' in fault && fault.target === 'leader' && spec.protocols.includes('epaxos') && familiesFor(spec, 'epaxos').includes(family)) {
          issue(['families', i, 'faults', j, 'target'], 'EPaxos has no single leader (every replica leads its own instances): give the family `protocols: [pbft]`');
        }
      });
    });
    if (spec.fault_free_share < 1) {
      for (const protocol of spec.protocols) {
        if (familiesFor(spec, protocol).length === 0) {
          issue(['families'], `no family applies to ${protocol}${spec.within_fault_model ? ' within its fault model' : ''}, yet fault_free_share < 1`);
        }
      }
    }
  });

export type CorpusSpec = z.infer<typeof corpusSpecSchema>;
export type CorpusSpecInput = z.input<typeof corpusSpecSchema>;
export type FamilySpec = CorpusSpec['families'][number];
export type FaultTemplate = FamilySpec['faults'][number];
export type LoadLevel = CorpusSpec['loads'][number];
export type NoiseSpec = CorpusSpec['noise'];

/** Whether every fault of a family lies within the protocol's fault model (fault-model.ts). */
export function familyWithinModel(family: FamilySpec, protocol: Protocol): boolean {
  if (protocol === 'pbft') return true;
  return family.faults.every((fault) => !EPAXOS_BEYOND_KINDS.has(fault.kind) && !(fault.kind === 'crash' && fault.amnesia === true));
}

/** The families a protocol's runs draw from: declared for it, and within its fault model if the spec says so. */
export function familiesFor(spec: Pick<CorpusSpec, 'families' | 'within_fault_model'>, protocol: Protocol): FamilySpec[] {
  return spec.families.filter((family) => (family.protocols === undefined || family.protocols.includes(protocol)) && (!spec.within_fault_model || familyWithinModel(family, protocol)));
}

export function seedsOf(spec: Pick<CorpusSpec, 'seeds'>): number[] {
  return Array.isArray(spec.seeds) ? [...spec.seeds] : Array.from({ length: spec.seeds.count }, (_, i) => (spec.seeds as { base: number }).base + i);
}

export function nodesOf(spec: Pick<CorpusSpec, 'nodes'>, protocol: Protocol): number {
  return spec.nodes[protocol] ?? (protocol === 'pbft' ? 4 : 5);
}

/** Overrides applied before validation, so they are checked like the file's own values. */
export interface SpecOverrides {
  readonly durationMs?: number;
}

/** Validates an already-parsed document; throws ValidationError naming every bad field. */
export function validateCorpusSpec(input: unknown, source = 'input', overrides: SpecOverrides = {}): CorpusSpec {
  const document = overrides.durationMs !== undefined && typeof input === 'object' && input !== null ? { ...input, duration_ms: overrides.durationMs } : input;
  const parsed = corpusSpecSchema.safeParse(document);
  if (parsed.success) return parsed.data;
  throw new ValidationError(`corpus spec ${source}`, fieldErrorsOf(parsed.error.issues, document));
}

export function parseCorpusSpec(text: string, source = 'input', overrides: SpecOverrides = {}): CorpusSpec {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ValidationError(`corpus spec ${source}`, [{ path: '', message: `not valid YAML/JSON: ${(error as Error).message}` }]);
  }
  return validateCorpusSpec(document, source, overrides);
}

export function loadCorpusSpecFile(path: string, overrides: SpecOverrides = {}): CorpusSpec {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ValidationError(`corpus spec ${path}`, [{ path: '', message: `cannot be read: ${(error as Error).message}` }]);
  }
  return parseCorpusSpec(text, path, overrides);
}

function uniqueNames(items: readonly { name: string }[], path: string[], issue: (path: (string | number)[], message: string) => void): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name)) issue([...path, i, 'name'], `${item.name} is used twice`);
    seen.add(item.name);
  });
}

