/**
 * Versioned, checksummed model artefacts: one JSON file per model version holding what it takes
 * to score with the model and to know what it is — kind, version, creation time (from an
 * injected clock), window width, level, feature names, the feature-spec hash, the detector's
 * state (scaler / weights), thresholds, training runs and metrics — and a SHA-256 checksum over
 * the canonical content (every field but `checksum`, keys sorted, JSON numbers as JavaScript
 * prints them, which round-trip exactly). Per-section digests beside it let a refusal name the
 * part that changed. Loading checks the format, the checksum, then the feature spec against the
 * registry of this build, and refuses with a coded error naming what differs.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../core/clock.ts';
import { LatticeError, invariant } from '../core/errors.ts';
import { FeatureSpecError, featureNames, featureSpecHash, type FeatureLevel } from '../store/feature-registry.ts';
import type { Detector, DetectorFactory, DetectorState } from './detector.ts';
import { isolationForestFactory } from './isolation-forest.ts';
import { robustZFactory } from './robust-z.ts';

export const ARTEFACT_FORMAT = 'lattice-model';
export const ARTEFACT_FORMAT_VERSION = 1;

export class ArtefactError extends LatticeError {
  readonly path: string;
  /** For a checksum mismatch: the sections whose digest differs. */
  readonly sections: readonly string[];

  constructor(code: 'ARTEFACT_INVALID' | 'ARTEFACT_CHECKSUM_MISMATCH', path: string, message: string, sections: readonly string[] = []) {
    super(code, `model artefact ${path}: ${message}`);
    this.path = path;
    this.sections = sections;
  }
}

/** A threshold per context (protocol/nodes): alert when `alert_windows` consecutive windows score above it. */
export interface ThresholdEntry {
  readonly threshold: number;
  readonly alert_windows: number;
  readonly budget_false_alarms_per_hour: number;
  readonly calibration_false_alarms: number;
  readonly calibration_fault_free_hours: number;
  readonly calibration_runs: number;
}

export interface ArtefactContent {
  readonly format: typeof ARTEFACT_FORMAT;
  readonly format_version: typeof ARTEFACT_FORMAT_VERSION;
  readonly kind: string;
  readonly version: string;
  readonly created_at: string;
  readonly window_ms: number;
  readonly level: FeatureLevel;
  readonly feature_names: readonly string[];
  readonly feature_spec_hash: string;
  readonly state: DetectorState;
  readonly thresholds: Readonly<Record<string, ThresholdEntry>>;
  readonly training: { readonly corpus: string; readonly runs: readonly string[]; readonly seed: number; readonly windows: number; readonly fit_on: string };
  readonly calibration: { readonly corpus: string; readonly runs: readonly string[] };
  /** Baselines placed at the same operating point on the same calibration runs (random: seeded uniform scores). */
  readonly baselines: Readonly<Record<string, { readonly seed: number; readonly thresholds: Readonly<Record<string, ThresholdEntry>> }>>;
  readonly metrics: Readonly<Record<string, unknown>>;
}

export interface Artefact extends ArtefactContent {
  readonly checksum: { readonly algorithm: 'sha256'; readonly value: string; readonly sections: Readonly<Record<string, string>> };
}

/** JSON with object keys sorted at every depth; refuses values JSON cannot carry exactly. */
export function canonicalJson(value: unknown, path = '$'): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    invariant(Number.isFinite(value), `canonical JSON: ${path} is ${value}, which JSON cannot carry`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v, i) => canonicalJson(v, `${path}[${i}]`)).join(',')}]`;
  if (ArrayBuffer.isView(value)) return canonicalJson(Array.from(value as unknown as ArrayLike<number>), path);
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, `${path}.${k}`)}`).join(',')}}`;
  }
  invariant(false, `canonical JSON: ${path} is a ${typeof value}`);
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

function checksumOf(content: ArtefactContent): Artefact['checksum'] {
  const sections: Record<string, string> = {};
  for (const [key, value] of Object.entries(content).sort(([a], [b]) => (a < b ? -1 : 1))) sections[key] = sha256(canonicalJson(value));
  return { algorithm: 'sha256', value: sha256(canonicalJson(content)), sections };
}

export interface BuildArtefact {
  readonly detector: Detector;
  readonly clock: Clock;
  readonly thresholds: ArtefactContent['thresholds'];
  readonly training: ArtefactContent['training'];
  readonly calibration: ArtefactContent['calibration'];
  readonly baselines?: ArtefactContent['baselines'];
  readonly metrics?: ArtefactContent['metrics'];
}

/** The artefact of a fitted detector; its version is its creation time plus the checksum's head. */
export function buildArtefact(input: BuildArtefact): Artefact {
  const { detector } = input;
  invariant(detector.fitted, 'artefact of an unfitted detector');
  const createdAt = new Date(Math.floor(input.clock.nowUs() / 1000)).toISOString();
  const base = {
    format: ARTEFACT_FORMAT,
    format_version: ARTEFACT_FORMAT_VERSION,
    kind: detector.kind,
    version: '',
    created_at: createdAt,
    window_ms: detector.windowMs,
    level: detector.level,
    feature_names: [...detector.featureNames],
    feature_spec_hash: featureSpecHash(detector.windowMs),
    state: detector.save(),
    thresholds: input.thresholds,
    training: input.training,
    calibration: input.calibration,
    baselines: input.baselines ?? {},
    metrics: input.metrics ?? {},
  } satisfies ArtefactContent;
  // The version names the content (without itself), so two trainings never share one by accident.
  const version = `${createdAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${checksumOf(base).value.slice(0, 8)}`;
  const content: ArtefactContent = { ...base, version };
  return { ...content, checksum: checksumOf(content) };
}

/** Writes `<dir>/<kind>-<version>.json` and returns its path. */
export function writeArtefact(dir: string, artefact: Artefact): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${artefact.kind}-${artefact.version}.json`);
  writeFileSync(path, `${JSON.stringify(artefact, null, 1)}\n`);
  return path;
}

const FACTORIES: Readonly<Record<string, DetectorFactory>> = {
  [robustZFactory.kind]: robustZFactory as DetectorFactory,
  [isolationForestFactory.kind]: isolationForestFactory as DetectorFactory,
};

export function detectorFactory(kind: string): DetectorFactory | undefined {
  return FACTORIES[kind];
}

export interface LoadedModel {
  readonly artefact: Artefact;
  readonly detector: Detector;
  readonly path: string;
}

/** Checks an artefact's format, checksum and feature spec; returns it and its detector. */
export function verifyArtefact(parsed: unknown, path: string, expect: { windowMs?: number; level?: FeatureLevel } = {}): LoadedModel {
  const a = parsed as Partial<Artefact> | null;
  if (a === null || typeof a !== 'object' || a.format !== ARTEFACT_FORMAT) throw new ArtefactError('ARTEFACT_INVALID', path, `format: expected "${ARTEFACT_FORMAT}", got ${JSON.stringify(a?.format)}`);
  if (a.format_version !== ARTEFACT_FORMAT_VERSION) throw new ArtefactError('ARTEFACT_INVALID', path, `format_version: expected ${ARTEFACT_FORMAT_VERSION}, got ${JSON.stringify(a.format_version)}`);
  if (a.checksum?.algorithm !== 'sha256' || typeof a.checksum.value !== 'string') throw new ArtefactError('ARTEFACT_INVALID', path, 'checksum: expected { algorithm: "sha256", value, sections }');
  const { checksum, ...content } = a as Artefact;
  const actual = checksumOf(content);
  if (actual.value !== checksum.value) {
    const keys = new Set([...Object.keys(actual.sections), ...Object.keys(checksum.sections ?? {})]);
    const differ = [...keys].filter((k) => actual.sections[k] !== checksum.sections?.[k]).sort();
    throw new ArtefactError(
      'ARTEFACT_CHECKSUM_MISMATCH',
      path,
      `checksum mismatch: recorded sha256 ${checksum.value}, content hashes to ${actual.value}; ${differ.length > 0 ? `changed: ${differ.join(', ')}` : 'the recorded section digests were changed too'} — the file was modified after it was written; retrain or restore it`,
      differ,
    );
  }
  const windowMs = expect.windowMs ?? content.window_ms;
  if (content.window_ms !== windowMs) throw new ArtefactError('ARTEFACT_INVALID', path, `window_ms: the model is for ${content.window_ms} ms windows, ${windowMs} ms asked for`);
  if (expect.level !== undefined && content.level !== expect.level) throw new ArtefactError('ARTEFACT_INVALID', path, `level: the model is for ${content.level} windows, ${expect.level} asked for`);
  const current = featureSpecHash(windowMs);
  if (content.feature_spec_hash !== current) throw new FeatureSpecError(content.feature_spec_hash, current, windowMs);
  const names = featureNames(content.level);
  if (names.join('\n') !== content.feature_names.join('\n')) {
    const missing = content.feature_names.filter((n) => !names.includes(n));
    const extra = names.filter((n) => !content.feature_names.includes(n));
    throw new ArtefactError('ARTEFACT_INVALID', path, `feature_names differ from this build's registry (not in the registry: ${missing.join(', ') || 'none'}; new in the registry: ${extra.join(', ') || 'none'})`);
  }
  const factory = detectorFactory(content.kind);
  if (factory === undefined) throw new ArtefactError('ARTEFACT_INVALID', path, `kind: unknown model kind ${JSON.stringify(content.kind)} (known: ${Object.keys(FACTORIES).join(', ')})`);
  return { artefact: a as Artefact, detector: factory.load(content.state), path };
}

export function readArtefact(path: string, expect: { windowMs?: number; level?: FeatureLevel } = {}): LoadedModel {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (cause) {
    throw new ArtefactError('ARTEFACT_INVALID', path, `not readable as JSON: ${(cause as Error).message}`);
  }
  return verifyArtefact(parsed, path, expect);
}
