/** `tdxsim invariants`: the library a scenario's `invariants:` and `explore --invariant` pick from. */
import { INVARIANTS } from '../explore/invariants/index.ts';
import { EXIT_OK } from './exitCodes.ts';

export function invariantsCommand(print: (line: string) => void): number {
  for (const i of INVARIANTS) {
    const bound = i.defaultBound === undefined ? '' : `; bound ${i.defaultBound} unless given`;
    print(`${i.name}  (${i.byDefault ? 'checked by default' : 'on request'}${bound})`);
    print(`    ${i.description}`);
  }
  print('# declare them in a scenario (invariants: [no-failure, { name: NAME, bound: N }]) or per search: tdxsim explore <scenario> --invariant NAME');
  return EXIT_OK;
}
