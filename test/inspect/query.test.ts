import { describe, expect, it } from 'vitest';
import { compileQuery, type Searchable } from '../../src/inspect/query.ts';

const ev = (over: Partial<Searchable>): Searchable => ({ seq: 1, from: 'hw.cpu0', to: 'guest.vcpu0', kind: 'exception', name: '#VE', label: '#VE', fields: 'vector=20', ...over });
const vmcall = ev({ from: 'guest.vcpu0', to: 'tdx', kind: 'tdcall', name: 'TDG.VP.VMCALL<#VE.RequestMMIO>', label: 'TDG.VP.VMCALL<#VE.RequestMMIO>', fields: 'RCX=0xffcc R14=0x8000fe000000' });
const busy = ev({ from: 'tdx', to: 'kvm.vcpu0', kind: 'seamcall-return', name: 'TDH.MEM.PAGE.AUG', label: 'TDH.MEM.PAGE.AUG (return)', fields: 'RAX=0x8000020000000000 (TDX_OPERAND_BUSY) RCX=0x1' });
const exit = ev({ from: 'tdx', to: 'kvm.vcpu0', kind: 'td-exit', name: 'EPT_VIOLATION', label: 'EPT_VIOLATION (TD exit)', fields: 'RAX=0x30 R8=0x8000fe000000' });

const matches = (q: string, e: Searchable) => compileQuery(q)!(e);

describe('the filter language of next/previous match', () => {
  it('"#VE" is the exception, not the TDVMCALL sub-function that contains it', () => {
    expect(matches('#VE', ev({}))).toBe(true);
    expect(matches('#ve', ev({}))).toBe(true);
    expect(matches('#VE', vmcall)).toBe(false);
  });
  it('a status name matches the word in the decoded fields', () => {
    expect(matches('TDX_OPERAND_BUSY', busy)).toBe(true);
    expect(matches('TDX_OPERAND', busy)).toBe(false);
  });
  it('a GPA matches any field with that value, whatever its spelling', () => {
    expect(matches('0x8000fe000000', vmcall)).toBe(true);
    expect(matches('0x8000FE000000', exit)).toBe(true);
    expect(matches('0x8000fe001000', exit)).toBe(false);
  });
  it('actor ids match sender or receiver; from:/to:/name:/kind: pin one field', () => {
    expect(matches('kvm.vcpu0', exit)).toBe(true);
    expect(matches('from:kvm.vcpu0', exit)).toBe(false);
    expect(matches('to:kvm.vcpu0 EPT_VIOLATION', exit)).toBe(true);
    expect(matches('name:EPT_VIOLATION', exit)).toBe(true);
    expect(matches('EPT_VIOLATION (TD exit)'.split(' ')[0]!, exit)).toBe(true);
    expect(matches('kind:td-exit', exit)).toBe(true);
  });
  it('quotes and ~ search substrings; all terms must match', () => {
    expect(matches('"RequestMMIO"', vmcall)).toBe(true);
    expect(matches('~RequestMMIO', vmcall)).toBe(true);
    expect(matches('#VE kvm.vcpu0', ev({}))).toBe(false);
    expect(compileQuery('   ')).toBeNull();
  });
});
