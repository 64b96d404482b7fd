/**
 * Making arbitrary text safe inside a Mermaid diagram. Mermaid reads `#…;` as an entity code, `;` as a
 * statement break, `<…>` as HTML (and strips it: `TDG.VP.VMCALL<#VE.RequestMMIO>` would lose its
 * sub-function), and `:`/`{`/`}`/`"`/`%` as syntax in some positions. Every character outside a plain set
 * is therefore written as its decimal entity (`#35;` for `#`), which Mermaid renders back as the character.
 */

const PLAIN = /[A-Za-z0-9 _.,()[\]!/*+=|-]/;

export function mermaidText(s: string): string {
  let out = '';
  for (const ch of s) out += PLAIN.test(ch) ? ch : `#${ch.codePointAt(0)};`;
  return out;
}

/** Mermaid ids: letters, digits and `_` only (`kvm.vcpu0` → `kvm_vcpu0`), never starting with a digit. */
export function mermaidId(s: string): string {
  const id = s.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[0-9]/.test(id) ? `_${id}` : id;
}
