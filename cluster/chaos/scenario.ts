/**
 * Scenario files (YAML or JSON): cluster size, duration, clients, workload, network defaults and a
 * fault schedule. Validated with zod into a typed Scenario; every problem is reported with the
 * field it concerns (ScenarioError.fieldErrors), e.g. `faults.2.rate: expected a number <= 1`.
 */
import { fieldErrorsOf } from '../../core/field-errors.ts';
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ScenarioError, type FieldError } from '../../core/errors.ts';
import { FAULT_KINDS, PROTOCOLS, type FaultKind } from '../../core/trace-schema.ts';

const int = (what: string) => z.number({ error: `${what}: expected a number` }).int(`${what}: expected an integer`);
const nonNegInt = (what: string) => int(what).nonnegative(`${what}: expected >= 0`);
const positiveInt = (what: string) => int(what).positive(`${what}: expected > 0`);
const probability = (what: string) =>
  z.number({ error: `${what}: expected a number` }).min(0, `${what}: expected a number >= 0`).max(1, `${what}: expected a number <= 1`);
const nodeIds = z.array(nonNegInt('node id'), { error: 'expected an array of node ids' }).min(1, 'expected at least one node');

/** A clock drifting at -10⁶ ppm would stand still; beyond +10⁷ ppm (11× true speed) is no clock. */
const DRIFT_PPM_STOP = 1_000_000;
const DRIFT_PPM_MAX = 10_000_000;

const faultBase = {
  at_ms: nonNegInt('at_ms'),
  /** Absent: the fault lasts until the end of the fault period (duration_ms of the scenario). */
  duration_ms: positiveInt('duration_ms').optional(),
};

const faultSchemas = [
  z.strictObject({
    kind: z.literal('crash'),
    ...faultBase,
    nodes: nodeIds,
    /** Restart with nothing: log, state and reply cache lost, as after a disk loss. */
    amnesia: z.boolean({ error: 'amnesia: expected true or false' }).optional(),
  }),
  z.strictObject({ kind: z.literal('partition'), ...faultBase, groups: z.array(nodeIds, { error: 'expected an array of node groups' }).min(1, 'expected at least one group') }),
  z.strictObject({
    kind: z.literal('delay'),
    ...faultBase,
    delay_ms: z.number({ error: 'delay_ms: expected a number' }).positive('delay_ms: expected > 0'),
    nodes: nodeIds.optional(),
    links: z.array(z.tuple([nonNegInt('from'), nonNegInt('to')], { error: 'expected [from, to]' })).min(1).optional(),
  }),
  z.strictObject({ kind: z.literal('drop'), ...faultBase, rate: probability('rate'), nodes: nodeIds.optional() }),
  z.strictObject({ kind: z.literal('duplicate'), ...faultBase, rate: probability('rate'), nodes: nodeIds.optional() }),
  z.strictObject({
    kind: z.literal('reorder'),
    ...faultBase,
    rate: probability('rate'),
    delay_ms: z.number({ error: 'delay_ms: expected a number' }).positive('delay_ms: expected > 0').optional(),
    nodes: nodeIds.optional(),
  }),
  z.strictObject({
    kind: z.literal('clock_skew'),
    ...faultBase,
    nodes: nodeIds,
    /** A step of the wall clock at the start (undone at the end); timers ignore it (monotonic). */
    skew_ms: z.number({ error: 'skew_ms: expected a number' }).finite('skew_ms: expected a finite number').default(0),
    /** The clock runs 1 + drift_ppm/10⁶ times as fast as true time (negative: slow), timers too. */
    drift_ppm: z
      .number({ error: 'drift_ppm: expected a number' })
      .gt(-DRIFT_PPM_STOP, `drift_ppm: expected > -${DRIFT_PPM_STOP} (at -${DRIFT_PPM_STOP} the clock stops)`)
      .max(DRIFT_PPM_MAX, `drift_ppm: expected <= ${DRIFT_PPM_MAX}`)
      .default(0),
  }),
  z.strictObject({
    kind: z.literal('equivocation'),
    ...faultBase,
    /** `leader`: whoever leads when the fault starts (PBFT: the primary of the view then). */
    nodes: z.union([z.literal('leader'), nodeIds], { error: 'expected an array of node ids or "leader"' }),
  }),
  z.strictObject({
    kind: z.literal('forged_vote'),
    ...faultBase,
    nodes: nodeIds,
    behaviour: z.enum(['impersonate', 'wrong_digest', 'both'], { error: 'expected impersonate, wrong_digest or both' }).default('both'),
  }),
  z.strictObject({ kind: z.literal('withheld_vote'), ...faultBase, nodes: nodeIds, rate: probability('rate').default(1) }),
  z.strictObject({ kind: z.literal('replay'), ...faultBase, nodes: nodeIds, rate: probability('rate').default(0.2) }),
  z.strictObject({ kind: z.literal('silent'), ...faultBase, nodes: nodeIds }),
  z.strictObject({ kind: z.literal('state_corruption'), ...faultBase, nodes: nodeIds }),
] as const;

const faultSchema = z.discriminatedUnion('kind', faultSchemas, { error: `kind: expected one of ${FAULT_KINDS.join(', ')}` });

const workloadSchema = z.strictObject({
  keys: positiveInt('keys').default(8),
  read: probability('read').default(0.4),
  write: probability('write').default(0.4),
  cas: probability('cas').default(0.2),
  think_ms: z.number({ error: 'think_ms: expected a number' }).nonnegative('think_ms: expected >= 0').default(0.5),
});

const networkSchema = z.strictObject({
  latency_us: z.number({ error: 'latency_us: expected a number' }).positive('latency_us: expected > 0').default(300),
  jitter: z.number({ error: 'jitter: expected a number' }).nonnegative('jitter: expected >= 0').max(3, 'jitter: expected <= 3').default(0.35),
  tail_rate: probability('tail_rate').default(0.01),
  tail_us: z.number({ error: 'tail_us: expected a number' }).nonnegative('tail_us: expected >= 0').default(4000),
  drop: probability('drop').default(0),
  duplicate: probability('duplicate').default(0),
  reorder: probability('reorder').default(0),
  reorder_delay_us: z.number({ error: 'reorder_delay_us: expected a number' }).nonnegative().default(2000),
});

export const scenarioSchema = z
  .strictObject({
    name: z.string({ error: 'expected a string' }).min(1, 'must not be empty').max(80, 'must be at most 80 characters').regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
    description: z.string({ error: 'expected a string' }).optional(),
    protocol: z.enum(PROTOCOLS, { error: `expected one of ${PROTOCOLS.join(', ')}` }).optional(),
    nodes: int('nodes').min(3, 'nodes: expected >= 3').max(64, 'nodes: expected <= 64'),
    duration_ms: positiveInt('duration_ms').max(600_000, 'duration_ms: expected <= 600000'),
    /** Upper bound of the quiet period after the faults, in which pending requests must finish. */
    quiet_ms: positiveInt('quiet_ms').default(20_000),
    clients: positiveInt('clients').max(256, 'clients: expected <= 256').default(4),
    workload: workloadSchema.default(() => workloadSchema.parse({})),
    network: networkSchema.default(() => networkSchema.parse({})),
    faults: z.array(faultSchema, { error: 'expected an array of faults' }).default([]),
  })
  .superRefine((scenario, ctx) => {
    if (scenario.protocol === 'pbft' && (scenario.nodes - 1) % 3 !== 0) {
      ctx.addIssue({ code: 'custom', path: ['nodes'], message: 'PBFT needs n = 3f+1 replicas (4, 7, 10, ...)' });
    }
    if (scenario.protocol === 'epaxos' && scenario.nodes % 2 === 0) {
      ctx.addIssue({ code: 'custom', path: ['nodes'], message: 'EPaxos needs n = 2f+1 replicas (3, 5, 7, ...)' });
    }
    scenario.faults.forEach((fault, i) => {
      if (fault.at_ms >= scenario.duration_ms) {
        ctx.addIssue({ code: 'custom', path: ['faults', i, 'at_ms'], message: `must be before duration_ms (${scenario.duration_ms})` });
      }
      const check = (ids: readonly number[], path: (string | number)[]) =>
        ids.forEach((id, j) => {
          if (id >= scenario.nodes) ctx.addIssue({ code: 'custom', path: [...path, j], message: `node ${id} does not exist (nodes: ${scenario.nodes})` });
        });
      if ('nodes' in fault && Array.isArray(fault.nodes)) check(fault.nodes, ['faults', i, 'nodes']);
      if (fault.kind === 'clock_skew' && fault.skew_ms === 0 && fault.drift_ppm === 0) {
        ctx.addIssue({ code: 'custom', path: ['faults', i, 'skew_ms'], message: 'a clock fault needs a non-zero skew_ms (a step) or drift_ppm (a rate), or both' });
      }
      if (fault.kind === 'equivocation' && fault.nodes === 'leader' && scenario.protocol === 'epaxos') {
        ctx.addIssue({ code: 'custom', path: ['faults', i, 'nodes'], message: 'EPaxos has no single leader (every replica leads its own instances): name the nodes' });
      }
      if (fault.kind === 'partition') fault.groups.forEach((group, g) => check(group, ['faults', i, 'groups', g]));
      if (fault.kind === 'delay' && fault.links !== undefined) fault.links.forEach((link, l) => check(link, ['faults', i, 'links', l]));
    });
  });

export type Scenario = z.infer<typeof scenarioSchema>;
export type FaultSpec = Scenario['faults'][number];
export type ScenarioInput = z.input<typeof scenarioSchema>;

/** Validates an already-parsed object; throws ScenarioError naming every bad field. */
export function validateScenario(input: unknown, source = 'input'): Scenario {
  const parsed = scenarioSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ScenarioError(source, fieldErrorsOf(parsed.error.issues, input));
}

/** Parses YAML or JSON text (YAML is a superset of JSON). */
export function parseScenario(text: string, source = 'input', defaultName?: string): Scenario {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ScenarioError(source, [{ path: '', message: `not valid YAML/JSON: ${(error as Error).message}` }]);
  }
  if (defaultName !== undefined && typeof document === 'object' && document !== null && !('name' in document)) {
    document = { name: defaultName, ...document };
  }
  return validateScenario(document, source);
}

export function loadScenarioFile(path: string): Scenario {
  return parseScenario(readFileSync(path, 'utf8'), path, basename(path, extname(path)));
}

