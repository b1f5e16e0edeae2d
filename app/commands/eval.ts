/**
 * `lattice eval --model PATH --corpus FILE`: scores a corpus's runs (in the store) with a trained
 * model at the operating point fixed in its artefact, and prints event metrics per protocol with
 * the random baseline beside them.
 */
import { Option, type Command } from 'commander';
import type { Protocol } from '../../core/trace-schema.ts';
import { readArtefact } from '../../models/artefact.ts';
import { evaluate, type EvaluationReport } from '../../training/evaluate.ts';
import type { EventMetrics } from '../../training/event-scoring.ts';
import { contextOf, integerOption } from '../cli.ts';
import { corpusRuns, openMigratedStore, readCorpus } from './train.ts';

interface EvalFlags {
  model: string;
  corpus: string;
  limit?: number;
  protocol?: Protocol;
  json?: boolean;
}

export function registerEvalCommand(program: Command): void {
  program
    .command('eval')
    .description('evaluate a trained model (an artefact from `lattice train`) on a corpus\'s runs in the store: event F1 per fault kind, false alarms per fault-free hour, delay p50/p90, PR-AUC, and a random baseline at the same operating point')
    .requiredOption('--model <path>', 'model artefact (JSON) written by `lattice train`')
    .option('--corpus <file>', 'corpus specification to evaluate on', 'training/corpus/test.yaml')
    .option('--limit <n>', 'only the first N runs of the corpus', integerOption('--limit', 1))
    .addOption(new Option('-p, --protocol <name>', 'only this protocol\'s runs').choices(['pbft', 'epaxos']))
    .option('--json', 'print the report as one JSON object')
    .action(async (options: EvalFlags, command: Command) => {
      const { config } = contextOf(command);
      const windowMs = config.features.window_ms;
      const { artefact, detector } = readArtefact(options.model, { windowMs });
      const corpus = corpusRuns(options.corpus, { ...(options.limit !== undefined && { limit: options.limit }), ...(options.protocol !== undefined && { protocol: options.protocol }) });
      const store = await openMigratedStore(config.store);
      let report: EvaluationReport;
      try {
        report = evaluate(artefact, detector, await readCorpus(store, corpus, artefact.level, windowMs, options.json === true, options.limit));
      } finally {
        await store.close();
      }
      process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report, corpus.name));
    });
}

const f = (x: number | null, digits = 3) => (x === null ? '—' : x.toFixed(digits));

function row(name: string, m: EventMetrics): string {
  return `  ${name.padEnd(10)} F1 ${f(m.f1)} (P ${f(m.precision)} R ${f(m.recall)}, ${m.detected}/${m.episodes} episodes) | F1 mean over kinds ${f(m.f1_mean)} | false alarms ${m.false_alarms} (${f(m.false_alarms_per_hour, 1)}/h over ${(m.fault_free_hours * 60).toFixed(1)} min) | delay p50 ${f(m.delay_ms_p50, 0)} ms p90 ${f(m.delay_ms_p90, 0)} ms | PR-AUC ${f(m.pr_auc)}`;
}

export function formatReport(report: EvaluationReport, corpus: string): string {
  const lines = [`${report.model.kind} ${report.model.version} on corpus ${corpus} (${report.model.level} level, ${report.model.window_ms} ms windows, grace ${report.grace_ms} ms)`];
  for (const [protocol, m] of Object.entries(report.by_protocol)) {
    lines.push(`${protocol}:`, row('model', m));
    for (const [name, b] of Object.entries(m.baselines)) lines.push(row(name, b));
    lines.push(`  by fault (model F1 / random F1, episodes): ${Object.keys(m.f1_by_fault).map((k) => `${k} ${f(m.f1_by_fault[k]!, 2)}/${f(m.baselines.random?.f1_by_fault[k] ?? null, 2)} (${m.episodes_by_fault[k]})`).join(', ')}`);
  }
  return `${lines.join('\n')}\n`;
}
