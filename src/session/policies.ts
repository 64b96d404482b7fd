/** Policy overrides from a command line or an API call, applied to a validated scenario. */
import type { PolicyOverrides } from '../policies.ts';
import type { Scenario } from '../scenario/schema.ts';

/** The scenario with command-line policy overrides applied; the log header records the result. */
export function withPolicies(s: Scenario, overrides: PolicyOverrides | undefined): Scenario {
  return overrides === undefined ? s : { ...s, policies: { ...s.policies, ...overrides } };
}
