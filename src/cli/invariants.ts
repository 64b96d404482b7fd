/** `tdxsim invariants`: the library a scenario's `invariants:` and `explore --invariant` pick from. */
import { INVARIANTS } from '../explore/invariants/index.ts';
import { EXIT_OK } from './exitCodes.ts';

export function invariantsCommand(opts: { json?: boolean }, print: (line: string) => void): number {
  if (opts.json) {
    print(JSON.stringify(INVARIANTS.map((i) => ({ name: i.name, description: i.description, byDefault: i.byDefault, ...(i.defaultBound !== undefined ? { defaultBound: i.defaultBound, maxBound: i.maxBound ?? null } : {}) })), null, 2));
    return EXIT_OK;
  }
  for (const i of INVARIANTS) {
    const bound = i.defaultBound === undefined ? '' : `; bound ${i.defaultBound} unless given`;
    print(`${i.name}  (${i.byDefault ? 'checked by default' : 'on request'}${bound})`);
    print(`    ${i.description}`);
  }
  print('# § sections are those of docs/tdx-semantics.md, the domain reference shipped with tdxsim');
  print('# declare them in a scenario (invariants: [no-failure, { name: NAME, bound: N }]) or per search: tdxsim explore <scenario> --invariant NAME');
  return EXIT_OK;
}
