/**
 * What a Redis search is, as the coordinator stores it and every worker reads it: the scenario (policy
 * overrides applied), the invariants, the bounds a worker enforces, the lease. Workers build their model
 * from it, so a worker needs no scenario file and runs anywhere the package is installed. A coordinator
 * that finds the search already there with the same description attaches to it; with another, it refuses.
 */
import { stringifyCanonical } from '../../log/canonical.ts';
import { parseScenarioObject } from '../../scenario/load.ts';
import type { Scenario } from '../../scenario/schema.ts';
import { MODEL_VERSION } from '../../version.ts';
import type { InvariantEntries } from '../share.ts';

export interface RedisSearchConfig {
  format: 1;
  model: string;
  scenario: Scenario;
  invariants: InvariantEntries;
  maxDepth: number;
  maxStates: number;
  /** 32-bit words of a sleep set: channels are sender·n + receiver over the model's actors. */
  words: number;
  /** A worker that has not renewed its hold on an entry for this long is taken to be gone. */
  leaseMs: number;
}

export function searchConfig(c: Omit<RedisSearchConfig, 'format' | 'model'>): RedisSearchConfig {
  return { format: 1, model: MODEL_VERSION, scenario: c.scenario, invariants: c.invariants, maxDepth: c.maxDepth, maxStates: c.maxStates, words: c.words, leaseMs: c.leaseMs };
}

/** As stored: the log's canonical JSON, whose bigints (GPAs, attributes) are '0x…' strings. */
export function configJson(c: RedisSearchConfig): string {
  return stringifyCanonical(c);
}

export function parseSearchConfig(json: string, searchId: string): RedisSearchConfig {
  const c = JSON.parse(json) as RedisSearchConfig;
  if (c.format !== 1) throw new RangeError(`search "${searchId}" in Redis has format ${String(c.format)}; this tdxsim reads format 1`);
  if (c.model !== MODEL_VERSION) throw new RangeError(`search "${searchId}" in Redis was started by ${c.model}; this is ${MODEL_VERSION}, whose states may differ`);
  return { ...c, scenario: parseScenarioObject(c.scenario, `search "${searchId}" in Redis (config.scenario)`) };
}
