/**
 * SVG as data: `{ tag, attrs, children }`. The statechart renderer builds this once; the export writes it
 * as text (here, escaping every attribute and text node), and the browser turns it into DOM nodes with
 * `createElementNS`/`setAttribute`/`textContent` (never innerHTML), so neither path can be injected into.
 */

export interface SvgEl {
  tag: string;
  attrs: Record<string, string | number>;
  children: (SvgEl | string)[];
}

export function el(tag: string, attrs: Record<string, string | number | undefined> = {}, ...children: (SvgEl | string | null | undefined | false)[]): SvgEl {
  const a: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = v;
  return { tag, attrs: a, children: children.filter((c): c is SvgEl | string => c !== null && c !== undefined && c !== false) };
}

const XML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => XML_ESCAPES[c]!);
}

const TAG = /^[A-Za-z][A-Za-z0-9:-]*$/;

export function svgToText(root: SvgEl): string {
  const out: string[] = [];
  const write = (n: SvgEl | string, depth: number) => {
    if (typeof n === 'string') {
      out.push(escapeXml(n));
      return;
    }
    if (!TAG.test(n.tag)) throw new Error(`svgToText: bad tag name ${JSON.stringify(n.tag)}`);
    const attrs = Object.entries(n.attrs).map(([k, v]) => {
      if (!TAG.test(k)) throw new Error(`svgToText: bad attribute name ${JSON.stringify(k)}`);
      return ` ${k}="${escapeXml(typeof v === 'number' ? fmtNum(v) : v)}"`;
    });
    const pad = depth > 0 ? '\n' + '  '.repeat(depth) : '';
    if (n.children.length === 0) {
      out.push(`${pad}<${n.tag}${attrs.join('')}/>`);
      return;
    }
    out.push(`${pad}<${n.tag}${attrs.join('')}>`);
    const inline = n.children.every((c) => typeof c === 'string');
    for (const c of n.children) write(c, depth + 1);
    out.push(`${inline ? '' : '\n' + '  '.repeat(depth)}</${n.tag}>`);
  };
  write(root, 0);
  return out.join('') + '\n';
}

/** Coordinates to two decimals at most: stable text, small files. */
export function fmtNum(v: number): string {
  return String(Math.round(v * 100) / 100);
}
