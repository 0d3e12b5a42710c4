#!/usr/bin/env node
// Validates AsyncAPI documents (JSON or YAML) with the official parser, @asyncapi/parser, and its default
// Spectral ruleset: the same checks AsyncAPI Studio and the AsyncAPI CLI run.
//
//   node validate.mjs [--show-warnings] FILE...
//
// Prints every diagnostic of severity error (file:line:col, rule code, message, JSON path) and, per file, how
// many warnings there were. Exit status: 0 when no document has an error, 1 when any has, 2 on a usage error
// (no file given, a file that cannot be read).
import path from 'node:path';
import process from 'node:process';

import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';

/** @typedef {import('@asyncapi/parser').Diagnostic} Diagnostic */

const SEVERITY_NAMES = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

/**
 * One line per diagnostic, in the file:line:col form editors and CI logs make clickable.
 * @param {string} file
 * @param {Diagnostic} diagnostic
 * @returns {string}
 */
function formatDiagnostic(file, diagnostic) {
  // Spectral's ranges are 0-based; people count lines from 1.
  const line = (diagnostic.range?.start?.line ?? 0) + 1;
  const column = (diagnostic.range?.start?.character ?? 0) + 1;
  const where = diagnostic.path?.length ? ` (at ${diagnostic.path.join('.')})` : '';
  const severity = SEVERITY_NAMES[diagnostic.severity] ?? String(diagnostic.severity);
  return `${file}:${line}:${column} ${severity} ${diagnostic.code}: ${diagnostic.message}${where}`;
}

/**
 * Parses one document; returns whether it is free of errors.
 * @param {Parser} parser
 * @param {string} file
 * @param {boolean} showWarnings
 * @returns {Promise<boolean>}
 */
async function validateFile(parser, file, showWarnings) {
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse();
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
  for (const diagnostic of errors) {
    console.error(formatDiagnostic(file, diagnostic));
  }
  if (showWarnings) {
    for (const diagnostic of warnings) {
      console.error(formatDiagnostic(file, diagnostic));
    }
  }
  // The parser returns no document when the input is not AsyncAPI at all; count that as an error even if it
  // came with no error diagnostic, so that such a file can never pass.
  const ok = errors.length === 0 && document !== undefined;
  const verdict = ok ? 'valid' : 'INVALID';
  console.log(`${file}: ${verdict} (${errors.length} error(s), ${warnings.length} warning(s))`);
  return ok;
}

async function main(argv) {
  const showWarnings = argv.includes('--show-warnings');
  const files = argv.filter((arg) => arg !== '--show-warnings');
  if (files.length === 0 || files.some((arg) => arg.startsWith('--'))) {
    console.error('usage: node validate.mjs [--show-warnings] FILE...');
    return 2;
  }
  // One parser for all files: it compiles the ruleset once.
  const parser = new Parser();
  let failed = 0;
  for (const file of files) {
    try {
      if (!(await validateFile(parser, file, showWarnings))) {
        failed += 1;
      }
    } catch (error) {
      // fromFile rejects when the file cannot be read; that is the caller's mistake, not the document's.
      console.error(`${file}: cannot be validated: ${error instanceof Error ? error.message : error}`);
      return 2;
    }
  }
  console.log(`${files.length - failed} valid, ${failed} invalid`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
