/**
 * Reads the runnable examples and tables out of a markdown document, so tests
 * run what the document shows instead of a copy of it that could drift.
 * A block or table is named by an HTML comment on the line before it:
 * `<!-- doc-example: NAME -->` before a fenced block, `<!-- doc-table: NAME -->`
 * before a table.
 */
import { readFileSync } from 'node:fs';

export function readDoc(path: string): string {
  return readFileSync(path, 'utf8');
}

function afterMarker(doc: string, marker: string): string {
  const at = doc.indexOf(marker);
  if (at < 0) throw new Error(`the document has no ${marker}`);
  if (doc.indexOf(marker, at + marker.length) >= 0) throw new Error(`the document has ${marker} twice`);
  return doc.slice(at + marker.length).replace(/^\s*\n/, '');
}

/** The body of the fenced code block named `name`. */
export function docExample(doc: string, name: string): string {
  const rest = afterMarker(doc, `<!-- doc-example: ${name} -->`);
  const fence = /^```[^\n]*\n([\s\S]*?)\n```/.exec(rest);
  if (!fence) throw new Error(`doc-example ${name} is not followed by a fenced code block`);
  return fence[1]!;
}

/** The rows of the table named `name`, as cells (header and separator rows dropped). */
export function docTable(doc: string, name: string): string[][] {
  const rest = afterMarker(doc, `<!-- doc-table: ${name} -->`);
  const lines: string[] = [];
  for (const line of rest.split('\n')) {
    if (!line.startsWith('|')) break;
    lines.push(line);
  }
  if (lines.length < 3) throw new Error(`doc-table ${name} is not followed by a table`);
  return lines.slice(2).map((line) =>
    line
      .slice(1, line.trimEnd().endsWith('|') ? line.trimEnd().length - 1 : undefined)
      .split('|')
      .map((cell) => cell.trim()),
  );
}

/** Every `code` span in a cell, without the backticks. */
export function codeSpans(cell: string): string[] {
  return [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}
