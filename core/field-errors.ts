/**
 * zod's issues as field errors — a path and a reason each — the one conversion the input
 * validators use (trace records, metrics snapshots, gap records, scenarios, corpus
 * specifications), so an error reads the same wherever the input came from.
 */
import type { z } from 'zod';
import type { FieldError } from './errors.ts';

export function fieldErrorsOf(issues: readonly z.core.$ZodIssue[], input: unknown): FieldError[] {
  return issues.map((issue) => fieldErrorOf(issue, input));
}

function fieldErrorOf(issue: z.core.$ZodIssue, input: unknown): FieldError {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') return { path: [path, issue.keys.join(',')].filter(Boolean).join('.'), message: `unknown field(s): ${issue.keys.join(', ')}` };
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_union') && issue.path.length > 0 && !hasPath(input, issue.path)) return { path, message: 'is required' };
  if (issue.code === 'invalid_union') {
    // A union (a number or a [min, max] range; an object or a list): a branch whose input had the
    // right shape says what is wrong inside it, better than the union's "expected A or B".
    const branch = issue.errors.find((inner) => inner.length > 0 && !(inner[0]!.code === 'invalid_type' && inner[0]!.path.length === 0));
    if (branch !== undefined) return fieldErrorOf({ ...branch[0]!, path: [...issue.path, ...branch[0]!.path] }, input);
  }
  return { path, message: issue.message };
}

/** The input has an own, defined value at `path`. */
function hasPath(value: unknown, path: readonly PropertyKey[]): boolean {
  let current = value;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || !Object.hasOwn(current, key)) return false;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current !== undefined;
}
