/** `tdxsim policies`: the policy switches a scenario (or `run --policy`) can set, with their defaults. */
import { InvalidArgumentError } from 'commander';
import { POLICIES, type PolicyName, type PolicyOverrides, type PolicySpec } from '../policies.ts';
import { EXIT_OK } from './exitCodes.ts';

export function policiesCommand(opts: { json?: boolean }, print: (line: string) => void): number {
  if (opts.json) {
    print(JSON.stringify(POLICIES, null, 2));
    return EXIT_OK;
  }
  for (const [name, p] of Object.entries(POLICIES) as [string, PolicySpec][]) {
    if (typeof p.default === 'number') {
      print(`${name}  (default: ${p.default}; ${p.range![0]}–${p.range![1]}; ${p.section})`);
      print(`    ${p.effect}`);
      print(`    other values: ${p.otherwise}`);
      continue;
    }
    print(`${name}  (default: ${p.default ? 'on' : 'off'}; ${p.section})`);
    print(`    on:  ${p.effect}`);
    print(`    off: ${p.otherwise}`);
    if (p.history !== undefined) print(`    history: ${p.history}`);
  }
  print('# set them in a scenario (policies: { name: true }) or per run: tdxsim run <scenario> --policy name=off --policy zeroStepThreshold=2');
  print('# § sections are those of docs/tdx-semantics.md, the domain reference shipped with tdxsim');
  return EXIT_OK;
}

const ON = ['on', 'true', '1'];
const OFF = ['off', 'false', '0'];

/** commander's collector for repeated `--policy name=on|off` (or `name=N` for a threshold). */
export function parsePolicyOption(value: string, previous: PolicyOverrides = {}): PolicyOverrides {
  const m = /^([A-Za-z]+)=(\w+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`--policy needs name=on|off, got "${value}"`);
  const [, name, setting] = m as unknown as [string, string, string];
  if (!(name in POLICIES)) throw new InvalidArgumentError(`unknown policy "${name}"; known: ${Object.keys(POLICIES).join(', ')} (tdxsim policies)`);
  const spec: PolicySpec = POLICIES[name as PolicyName];
  if (typeof spec.default === 'number') {
    const [min, max] = spec.range!;
    const n = Number(setting);
    if (!/^\d+$/.test(setting) || n < min || n > max) throw new InvalidArgumentError(`--policy ${name}: "${setting}" is not a whole number from ${min} to ${max}`);
    return { ...previous, [name]: n };
  }
  const v = setting.toLowerCase();
  if (!ON.includes(v) && !OFF.includes(v)) throw new InvalidArgumentError(`--policy ${name}: "${setting}" is not on or off`);
  return { ...previous, [name]: ON.includes(v) };
}
