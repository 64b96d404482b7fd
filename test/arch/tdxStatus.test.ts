import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  TDX_EPT_WALK_FAILED,
  TDX_EXT_EXIT_QUAL_TYPE_ACCEPT,
  TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION,
  TDX_GPA_RANGE_ALREADY_BLOCKED,
  TDX_OPERAND_BUSY,
  TDX_OPERAND_ID_RCX,
  TDX_OPERAND_ID_SEPT_TREE,
  TDX_OPERAND_ID_TD_EPOCH,
  TDX_PAGE_ALREADY_ACCEPTED,
  TDX_PAGE_SIZE_MISMATCH,
  TDX_SEAMCALL_GP,
  TDX_SEAMCALL_UD,
  TDX_SEAMCALL_VMFAILINVALID,
  TDX_SUCCESS,
  TDX_SW_ERROR,
  decodeAcceptEeqInfo,
  decodeEeq,
  isTdxError,
  makeAcceptEeqInfo,
  makeEeq,
  tdxStatusName,
  tdxStatusWithOperand,
} from '../../src/arch/tdxStatus.ts';
import { EXIT_REASON_EPT_VIOLATION } from '../../src/arch/vmx.ts';
import { SEPT_STATE_PUBLIC } from '../../src/arch/sept.ts';

describe('tdxStatusName decodes a full RAX value', () => {
  it('names the lock that was busy (§4.8, §7.2)', () => {
    expect(tdxStatusName(0x8000020000000092n)).toBe('TDX_OPERAND_BUSY|SEPT_TREE');
    expect(tdxStatusName(tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_RCX))).toBe('TDX_OPERAND_BUSY|RCX');
    expect(tdxStatusName(tdxStatusWithOperand(TDX_OPERAND_BUSY, TDX_OPERAND_ID_TD_EPOCH))).toBe('TDX_OPERAND_BUSY|TD_EPOCH');
    expect(tdxStatusName(tdxStatusWithOperand(TDX_EPT_WALK_FAILED, TDX_OPERAND_ID_RCX))).toBe('TDX_EPT_WALK_FAILED|RCX');
  });

  it('reads the low bits of the two ACCEPT answers as a level (§4.8)', () => {
    expect(tdxStatusName(TDX_PAGE_ALREADY_ACCEPTED | 1n)).toBe('TDX_PAGE_ALREADY_ACCEPTED|level=1');
    expect(tdxStatusName(TDX_PAGE_SIZE_MISMATCH | 1n)).toBe('TDX_PAGE_SIZE_MISMATCH|level=1');
  });

  it('reads the low bits of a TDH.VP.ENTER success as the exit reason (§5c.1)', () => {
    expect(tdxStatusName(TDX_SUCCESS)).toBe('TDX_SUCCESS');
    expect(tdxStatusName(TDX_SUCCESS | BigInt(EXIT_REASON_EPT_VIOLATION))).toBe('TDX_SUCCESS|exit_reason=EPT_VIOLATION');
  });

  it("names Linux's software codes whole and prints unknown codes in hex", () => {
    expect(tdxStatusName(TDX_SEAMCALL_VMFAILINVALID)).toBe('TDX_SEAMCALL_VMFAILINVALID');
    expect(tdxStatusName(TDX_SEAMCALL_GP)).toBe('TDX_SEAMCALL_GP');
    expect(tdxStatusName(TDX_SEAMCALL_UD)).toBe('TDX_SEAMCALL_UD');
    expect(tdxStatusName(TDX_SW_ERROR | 1n)).toBe('TDX_SW_ERROR|0x1');
    expect(tdxStatusName(0xc0000bff00000000n)).toBe('0xc0000bff00000000');
  });

  it('uses bit 63 alone to tell errors from informational statuses', () => {
    expect(isTdxError(TDX_OPERAND_BUSY)).toBe(true);
    expect(isTdxError(TDX_GPA_RANGE_ALREADY_BLOCKED)).toBe(false);
    expect(isTdxError(TDX_PAGE_ALREADY_ACCEPTED | 1n)).toBe(false);
  });

  it('refuses to combine a status that already carries an operand', () => {
    expect(() => tdxStatusWithOperand(TDX_OPERAND_BUSY | 1n, TDX_OPERAND_ID_SEPT_TREE)).toThrow(RangeError);
    expect(() => tdxStatusWithOperand(TDX_OPERAND_BUSY, 1n << 32n)).toThrow(RangeError);
  });
});

describe('extended exit qualification (§4.9)', () => {
  it('round-trips every type and info word', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 0xffffffff }), (type, info) => {
        const eeq = makeEeq(type, info);
        const d = decodeEeq(eeq);
        expect(d.type).toBe(type);
        expect(d.info).toBe(info);
      }),
    );
  });

  it('puts the type in bits 3:0 and the info in bits 63:32', () => {
    expect(makeEeq(TDX_EXT_EXIT_QUAL_TYPE_PENDING_EPT_VIOLATION)).toBe(6n);
    expect(makeEeq(TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, 0x4081)).toBe(0x0000408100000001n);
    expect(decodeEeq(6n).typeName).toBe('PENDING_EPT_VIOLATION');
    expect(() => decodeEeq(0x10n)).toThrow(RangeError);
  });

  it('round-trips the ACCEPT info word', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 255 }),
        fc.boolean(),
        (reqLevel, errLevel, state, leaf) => {
          const info = { reqLevel, errLevel, state, leaf };
          expect(decodeAcceptEeqInfo(makeAcceptEeqInfo(info))).toEqual(info);
          expect(makeAcceptEeqInfo(info) >>> 15).toBe(0);
        },
      ),
    );
  });

  it('encodes the [S002] exit: 4K accept stopped at a 2M PENDING leaf (§6.iii)', () => {
    const info = makeAcceptEeqInfo({ reqLevel: 0, errLevel: 1, state: SEPT_STATE_PUBLIC.PENDING, leaf: true });
    expect(info).toBe((1 << 3) | (2 << 6) | (1 << 14));
    expect(decodeEeq(makeEeq(TDX_EXT_EXIT_QUAL_TYPE_ACCEPT, info))).toEqual({ type: 1, typeName: 'ACCEPT', info });
  });
});
