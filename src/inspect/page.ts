/**
 * The two HTML documents the server writes itself: the app's shell (no log data in it: the app fetches
 * everything as JSON and puts it in the page as text) and the error page for a log that cannot be opened,
 * whose message is escaped.
 */
import { escapeXml } from '../export/svgTree.ts';

export const escapeHtml = escapeXml;

export function appPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tdxsim inspect</title>
<link rel="stylesheet" href="/assets/main.css">
<script type="module" src="/assets/main.js"></script>
</head>
<body>
<noscript>The tdxsim inspector needs JavaScript.</noscript>
</body>
</html>
`;
}

export function errorPage(title: string, message: string, hint: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tdxsim inspect: ${escapeHtml(title)}</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 3em auto; max-width: 60em; color: #1a202c; }
h1 { font-size: 1.3em; color: #c53030; }
pre { background: #fff5f5; border: 1px solid #feb2b2; padding: 1em; white-space: pre-wrap; word-break: break-word; }
</style>
</head>
<body>
<h1 id="error-title">${escapeHtml(title)}</h1>
<pre id="error-message">${escapeHtml(message)}</pre>
<p>${escapeHtml(hint)}</p>
</body>
</html>
`;
}
