/** Tiny DOM helpers: elements from tag, attributes and children; text is always set as text. */
export type Child = Node | string | undefined | false | null;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Record<string, string | boolean | undefined>,
  ...children: Child[]
): HTMLElementTagNameMap[K];
export function h(tag: string, attrs?: Record<string, string | boolean | undefined>, ...children: Child[]): HTMLElement;
export function h(tag: string, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === true) el.setAttribute(k, '');
    else if (typeof v === 'string') el.setAttribute(k, v);
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

/** A data table as a vscode-table (native look: zebra rows, resizable columns). */
export function dataTable(columns: string[], rows: string[][], options: { className?: string; numeric?: (col: number) => boolean } = {}): HTMLElement {
  const numeric = options.numeric ?? ((c) => rows.length > 0 && rows.every((r) => /^[-+]?[\d.,]+%?$|^–$/.test(r[c] ?? '')));
  return h(
    'vscode-table',
    { class: options.className ?? 'data', zebra: true, 'bordered-columns': true, resizable: true },
    h('vscode-table-header', { slot: 'header' }, ...columns.map((c) => h('vscode-table-header-cell', {}, c))),
    h(
      'vscode-table-body',
      { slot: 'body' },
      ...rows.map((r) => h('vscode-table-row', {}, ...r.map((cell, i) => h('vscode-table-cell', { class: numeric(i) ? 'num' : undefined }, cell)))),
    ),
  );
}

export function section(title: string, id: string, ...children: Child[]): HTMLElement {
  return h('vscode-collapsible', { heading: title, open: true, id, class: 'section' }, h('div', { class: 'section-body' }, ...children));
}
