/**
 * NDJSON encoding of a trace record: the field table's encoder (core/record-fields.ts), which
 * writes the fields in canonical order and produces exactly what `JSON.stringify(record)` gives
 * for a record built in that order, without walking the record as an unknown object — a replica
 * writes two or three records per client operation.
 */
import { canonicalRecordJson } from '../../core/trace-schema.ts';

export const traceRecordJson = canonicalRecordJson;
