/**
 * The HTML shell of every webview (results panel, runs table, model graph): one bundled script and
 * stylesheet from dist/webview, a content security policy that allows nothing else (a fresh nonce
 * per page), and an #app element the script fills.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

export interface WebviewPage {
  /** The bundle's base name in dist/webview: `<entry>.js` and `<entry>.css`. */
  entry: string;
  title: string;
  /** HTML shown in #app until the script renders (escaped by the caller). */
  placeholder?: string;
}

export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, page: WebviewPage): string {
  const nonce = randomBytes(16).toString('base64');
  const asset = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', name));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource} 'nonce-${nonce}'`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" nonce="${nonce}" href="${asset(`${page.entry}.css`)}">
<title>${page.title}</title>
</head>
<body>
<div id="app" aria-live="polite">${page.placeholder ?? ''}</div>
<script nonce="${nonce}" src="${asset(`${page.entry}.js`)}"></script>
</body>
</html>`;
}
