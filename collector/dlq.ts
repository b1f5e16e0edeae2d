/**
 * What an operator does with dead letters (`lattice dlq list | show | replay`): read them back
 * from the dead-letter topic, pick some, and re-ingest them after a fix. A replayed letter is
 * sent to its source topic with its original key and bytes, plus a header naming the dead
 * letter it came from, so a record that fails again is traceable to its first failure.
 */
import { LatticeError } from '../core/errors.ts';
import { parseDeadLetter, type DeadLetter, type DeadLetterReason } from './dead-letter.ts';
import type { OutgoingMessage, Transport } from './transport/transport.ts';

/** A dead letter and where it sits on the dead-letter topic (`partition:offset` names it). */
export interface StoredDeadLetter {
  readonly position: string;
  readonly letter: DeadLetter;
}

export const REPLAYED_FROM_HEADER = 'lattice.dlq.replayed_from';

export async function readDeadLetters(transport: Transport, dlqTopic: string, options: { messagesMax: number }): Promise<StoredDeadLetter[]> {
  if (transport.kind === 'inprocess') {
    throw new LatticeError('CONFIG_INVALID', 'the in-process transport keeps dead letters only inside the process that collected them (the demo counts them in its summary); to inspect and replay dead letters, collect through Kafka (--transport kafka)');
  }
  const messages = await transport.readTopic(dlqTopic, options);
  const out: StoredDeadLetter[] = [];
  for (const message of messages) {
    const letter = parseDeadLetter(message);
    // A message on the topic that is not a dead letter is reported, not hidden.
    const position = `${message.partition}:${message.offset}`;
    out.push({ position, letter: letter ?? { reason: 'schema_invalid', errors: [{ path: '', message: 'not a Lattice dead letter (no lattice.dlq.* headers)' }], source: { topic: '', partition: -1, offset: '', key: message.key, index: 0 }, value: message.value, deadLetteredAtMs: 0 } });
  }
  return out;
}

export interface Selection {
  /** `partition:offset` (or a bare offset, partition 0) of particular letters. */
  readonly positions?: readonly string[];
  readonly reasons?: readonly DeadLetterReason[];
  readonly all?: boolean;
}

export function selectDeadLetters(letters: readonly StoredDeadLetter[], selection: Selection): StoredDeadLetter[] {
  const positions = selection.positions?.map((p) => (p.includes(':') ? p : `0:${p}`));
  if (!selection.all && (positions === undefined || positions.length === 0) && (selection.reasons === undefined || selection.reasons.length === 0)) {
    throw new LatticeError('VALIDATION_FAILED', 'select dead letters by position, by reason, or --all');
  }
  if (positions !== undefined) {
    const known = new Set(letters.map((l) => l.position));
    const unknown = positions.filter((p) => !known.has(p));
    if (unknown.length > 0) throw new LatticeError('NOT_FOUND', `no dead letter at ${unknown.join(', ')} (see \`lattice dlq list\`)`);
  }
  return letters.filter((l) => (positions === undefined || positions.length === 0 || positions.includes(l.position)) && (selection.reasons === undefined || selection.reasons.length === 0 || selection.reasons.includes(l.letter.reason)));
}

/** The message that re-ingests a dead letter: to its source topic (or `toTopic`), with its key and bytes. */
export function replayMessage(stored: StoredDeadLetter, dlqTopic: string, toTopic?: string): { topic: string; message: OutgoingMessage } {
  const { letter } = stored;
  const topic = toTopic ?? letter.source.topic;
  if (topic === '') throw new LatticeError('VALIDATION_FAILED', `dead letter ${stored.position} names no source topic; pass --to-topic`);
  return { topic, message: { key: letter.source.key, value: letter.value, headers: { [REPLAYED_FROM_HEADER]: `${dlqTopic}:${stored.position}` } } };
}

export async function replayDeadLetters(transport: Transport, dlqTopic: string, letters: readonly StoredDeadLetter[], options: { toTopic?: string } = {}): Promise<number> {
  const byTopic = new Map<string, OutgoingMessage[]>();
  for (const stored of letters) {
    const { topic, message } = replayMessage(stored, dlqTopic, options.toTopic);
    byTopic.set(topic, [...(byTopic.get(topic) ?? []), message]);
  }
  const producer = await transport.createProducer();
  try {
    for (const [topic, messages] of byTopic) await producer.send(topic, messages);
    return letters.length;
  } finally {
    await producer.close();
  }
}

/** The value for a terminal: text when it is UTF-8 without control bytes, else a hex dump. */
export function describeValue(value: Buffer, bytesMax = 4_096): { kind: 'text' | 'binary'; text: string } {
  const shown = value.subarray(0, bytesMax);
  const more = value.length > bytesMax ? `\n… ${value.length - bytesMax} more bytes (use --raw for all of them)` : '';
  // eslint-disable-next-line no-control-regex
  const printable = !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\ufffd]/.test(shown.toString('utf8'));
  if (printable && Buffer.from(shown.toString('utf8')).equals(shown)) return { kind: 'text', text: shown.toString('utf8') + more };
  const lines: string[] = [];
  for (let i = 0; i < shown.length; i += 16) {
    const row = shown.subarray(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  return { kind: 'binary', text: lines.join('\n') + more };
}
