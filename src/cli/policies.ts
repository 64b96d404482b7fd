/** `tdxsim policies`: the policy switches a scenario (or `run --policy`) can set, with their defaults. */
import { InvalidArgumentError } from 'commander';
import { POLICIES, type PolicyName } from '../policies.ts';
import type { Scenario } from '../scenario/schema.ts';
import { EXIT_OK } from './exitCodes.ts';

export function policiesCommand(opts: { json?: boolean }, print: (line: string) => void): number {
  if (opts.json) {
    print(JSON.stringify(POLICIES, null, 2));
    return EXIT_OK;
  }
  for (const [name, p] of Object.entries(POLICIES)) {
    print(`${name}  (default: ${p.default ? 'on' : 'off'}; ${p.section})`);
    print(`    on:  ${p.effect}`);
    print(`    off: ${p.otherwise}`);
  }
  print('# set them in a scenario (policies: { name: true }) or per run: tdxsim run <scenario> --policy name=off');
  return EXIT_OK;
}

const ON = ['on', 'true', '1'];
const OFF = ['off', 'false', '0'];

/** commander's collector for repeated `--policy name=on|off`. */
export function parsePolicyOption(value: string, previous: Partial<Record<PolicyName, boolean>> = {}): Partial<Record<PolicyName, boolean>> {
  const m = /^([A-Za-z]+)=(\w+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`--policy needs name=on|off, got "${value}"`);
  const [, name, setting] = m as unknown as [string, string, string];
  if (!(name in POLICIES)) throw new InvalidArgumentError(`unknown policy "${name}"; known: ${Object.keys(POLICIES).join(', ')} (tdxsim policies)`);
  const v = setting.toLowerCase();
  if (!ON.includes(v) && !OFF.includes(v)) throw new InvalidArgumentError(`--policy ${name}: "${setting}" is not on or off`);
  return { ...previous, [name]: ON.includes(v) };
}

/** The scenario with command-line policy overrides applied; the log header records the result. */
export function withPolicies(s: Scenario, overrides: Partial<Record<PolicyName, boolean>> | undefined): Scenario {
  return overrides === undefined ? s : { ...s, policies: { ...s.policies, ...overrides } };
}
