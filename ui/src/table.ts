import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import { TabulatorFull as Tabulator, type ColumnDefinition } from 'tabulator-tables';
import 'tabulator-tables/dist/css/tabulator_simple.min.css';

export type Column = ColumnDefinition;

/**
 * A Tabulator table (sorting, CSV download) in a Preact view. Tabulator owns the table's DOM;
 * new rows replace the old ones in place.
 */
export function DataTable(props: {
  id: string;
  columns: Column[];
  rows: object[];
  /** Offers "Download CSV" saving `<csv>.csv`. */
  csv?: string;
  placeholder?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const table = useRef<Tabulator | undefined>(undefined);
  const built = useRef<Promise<void> | undefined>(undefined);
  // A periodic reload answers the same rows most of the time: the rows (and the buttons in them)
  // are redrawn only when they changed, so a click never lands on a row being replaced.
  const shown = useRef<string | undefined>(undefined);

  useEffect(() => {
    if (!host.current) return;
    const created = new Tabulator(host.current, {
      columns: props.columns.map(asText),
      data: props.rows,
      layout: 'fitDataStretch',
      placeholder: props.placeholder ?? 'nothing yet',
      maxHeight: '420px',
    });
    table.current = created;
    shown.current = JSON.stringify(props.rows);
    built.current = new Promise((resolve) => created.on('tableBuilt', () => resolve()));
    return () => {
      created.destroy();
      table.current = undefined;
      shown.current = undefined;
    };
    // Columns are fixed per table: a new column set is a new table (its key changes).
  }, [JSON.stringify(props.columns.map((c) => c.field))]);

  useEffect(() => {
    const current = table.current;
    const text = JSON.stringify(props.rows);
    if (!current || text === shown.current) return;
    shown.current = text;
    void built.current?.then(() => current.replaceData(props.rows));
  }, [props.rows]);

  const download = () => table.current?.download('csv', `${props.csv ?? props.id}.csv`);
  return html`<div class="table" data-table=${props.id}>
    ${
      props.csv &&
      html`<button class="link" data-testid=${`${props.id}-csv`} onClick=${download}>
        Download CSV
      </button>`
    }
    <div ref=${host}></div>
  </div>`;
}

const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** A value as text in HTML. */
export const plain = (value: unknown): string =>
  String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]!);

/**
 * Every table shows its formatters' strings as text. Tabulator puts the string a formatter returns
 * into the cell as HTML, and what the tables show comes from outside: ledger values (goal, caller,
 * conversation, model) are whatever a LiteLLM client sent in its tags, model ids and sync or probe
 * errors whatever an upstream answered. Unescaped, one of them could run script in an
 * administrator's session, where the admin token is. Markup is made as elements (`cellButton`).
 */
function asText(column: Column): Column {
  const format = column.formatter;
  if (typeof format !== 'function') return column;
  return {
    ...column,
    formatter: (cell, params, onRendered) => {
      const shown = format(cell, params, onRendered);
      return typeof shown === 'string' ? plain(shown) : shown;
    },
  };
}

/** A button in a cell, as an element: its label is text. */
export function cellButton(css: string, label: string): HTMLElement {
  const button = document.createElement('button');
  button.className = css;
  button.textContent = label;
  return button;
}

/** Formatters shared by the tables. */
export const usd = (value: unknown): string => `$${Number(value ?? 0).toFixed(4)}`;
export const percent = (value: unknown): string => `${(Number(value ?? 0) * 100).toFixed(1)} %`;
export const shortCommit = (value: unknown): string =>
  typeof value === 'string' ? value.slice(0, 12) : '';
export const when = (value: unknown): string =>
  typeof value === 'string' ? value.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '';
export const milliseconds = (value: unknown): string =>
  value === null || value === undefined ? '—' : String(Math.round(Number(value)));
