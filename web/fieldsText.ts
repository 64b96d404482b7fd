/**
 * A message's field list cut to fit a sequence row: whole fields from the left (the status or the GPA
 * comes first in the CLI's lists), then `…+N` for the fields left out, which the row's tooltip shows.
 */

/** `RAX=0x8000020000000000 (TDX_OPERAND_BUSY) RCX=0x1` → two fields: a field starts at `name=`. */
export function splitFields(fields: string): string[] {
  return fields.split(/\s+(?=[\w.[\]]+=)/).filter((f) => f !== '');
}

export function truncateFields(fields: string, maxChars: number): string {
  if (fields.length <= maxChars) return fields;
  const parts = splitFields(fields);
  let out = '';
  for (let i = 0; i < parts.length; i++) {
    const more = ` …+${parts.length - i}`;
    const next = out === '' ? parts[i]! : `${out} ${parts[i]}`;
    if (next.length + (i + 1 < parts.length ? ` …+${parts.length - i - 1}`.length : 0) > maxChars) {
      if (out !== '') return out + more;
      // Not even the first field fits: cut inside it, and count the others.
      const rest = parts.length > 1 ? ` +${parts.length - 1}` : '';
      return parts[0]!.slice(0, Math.max(1, maxChars - 1 - rest.length)) + '…' + rest;
    }
    out = next;
  }
  return out;
}
