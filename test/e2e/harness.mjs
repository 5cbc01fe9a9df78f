// End-to-end harness: code-server (a real VS Code 1.139 with a Node extension host) with the
// packaged VSIX installed, a workspace holding the demo model, and headless Chromium driven by
// playwright-core. Helpers speak in what a user sees and does: views, tree items, context menus,
// quick picks, notifications, the results webview.
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { ROOT, defaultVsix, installVsix, prepareDemoWorkspace, prepareUserData, startCodeServer } from '../../scripts/code-server.mjs';

export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Starts code-server with the VSIX and opens `workspace` (the demo, plus whatever `setup` adds).
 * `trusted: false` opens it in Restricted Mode.
 */
export async function openWorkbench(name, { trusted = true, settings = {}, setup } = {}) {
  const base = path.join(ARTIFACTS, name);
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const workspace = prepareDemoWorkspace(path.join(base, 'workspace'));
  setup?.(workspace);
  const userDataDir = path.join(base, 'user-data');
  prepareUserData(userDataDir, { 'robustnessLab.threads': 2, ...settings });
  const extensionsDir = path.join(base, 'extensions');
  const extensionDir = installVsix(process.env.RLAB_VSIX ?? defaultVsix(), extensionsDir, userDataDir);
  const serverLog = path.join(base, 'code-server.log');
  const server = await startCodeServer({ userDataDir, extensionsDir, trust: trusted, log: (l) => appendFileSync(serverLog, l + '\n') });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const consoleLog = path.join(base, 'browser-console.log');
  page.on('console', (m) => appendFileSync(consoleLog, `[${m.type()}] ${m.text()}\n`));
  await page.goto(server.folderUrl(workspace));
  await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
  await page.locator('.activitybar').waitFor({ timeout: 60_000 });
  const wb = new Workbench(page, base);
  return {
    page,
    wb,
    workspace,
    base,
    extensionDir,
    server,
    async close() {
      await browser.close().catch(() => {});
      await server.stop();
    },
  };
}

export class Workbench {
  constructor(page, artifacts) {
    this.page = page;
    this.artifacts = artifacts;
  }

  async screenshot(name) {
    const file = path.join(this.artifacts, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  async openSidebar() {
    // Clicking the container's icon while it is shown would hide it.
    if (await this.view('Models').isVisible()) return;
    const item = this.page.locator('.activitybar .action-item a[aria-label^="Robustness Lab"], .activitybar li[aria-label^="Robustness Lab"]').first();
    await item.waitFor({ timeout: 30_000 });
    await item.click();
    await this.view('Models').waitFor({ timeout: 15_000 });
  }

  /** A view pane of the sidebar, by its title. */
  view(title) {
    return this.page.locator('.pane').filter({ has: this.page.locator('.pane-header h3.title', { hasText: new RegExp(`^${title}$`, 'i') }) });
  }

  treeItem(viewTitle, name) {
    return this.view(viewTitle).getByRole('treeitem', { name });
  }

  /** Expands a tree item (again if the view re-rendered under the click). */
  async expand(item) {
    await item.waitFor({ timeout: 30_000 });
    for (let attempt = 0; attempt < 5; attempt++) {
      if ((await item.getAttribute('aria-expanded')) === 'true') return;
      await item.locator('.monaco-tl-twistie').click();
      await this.page.waitForTimeout(300);
    }
    throw new Error(`Could not expand ${await item.getAttribute('aria-label')}.`);
  }

  /** Right-clicks a tree item and chooses a context menu entry. */
  async contextMenu(locator, entry) {
    await locator.click({ button: 'right' });
    const menu = this.page.locator('.context-view .monaco-menu');
    const item = menu.getByRole('menuitem', { name: entry });
    await item.waitFor({ timeout: 10_000 });
    // The menu ignores a click that comes right after it opened (the right button's own mouseup).
    await this.page.waitForTimeout(400);
    await item.hover();
    await item.click();
    await menu.waitFor({ state: 'detached', timeout: 2000 }).catch(async () => {
      await item.focus();
      await this.page.keyboard.press('Enter');
      await menu.waitFor({ state: 'detached', timeout: 5000 });
    });
  }

  quickInput() {
    return this.page.locator('.quick-input-widget');
  }

  /** Closes the quick input if one shows, and waits until it is gone (it fades out). */
  async closeQuickInput() {
    const widget = this.quickInput();
    for (let i = 0; i < 3 && (await widget.isVisible()); i++) {
      await this.page.keyboard.press('Escape');
      await widget.waitFor({ state: 'hidden', timeout: 3000 }).catch(() => {});
    }
  }

  /** Waits for a quick pick or input box whose title contains `title`. */
  async waitForQuickInput(title) {
    const widget = this.quickInput();
    await widget.waitFor({ state: 'visible', timeout: 20_000 });
    if (title) await widget.locator('.quick-input-title', { hasText: title }).waitFor({ timeout: 20_000 });
    return widget;
  }

  /** Presses Enter in the quick input and waits until it moved on (closed, or the next step shows). */
  async submit(widget) {
    const input = widget.locator('input.input');
    // A step is told apart by its title, placeholder and text; the next step changes at least one.
    const signature = () =>
      Promise.all([widget.locator('.quick-input-title').innerText(), input.getAttribute('placeholder'), input.inputValue()])
        .then((parts) => parts.join('|'))
        .catch(() => '');
    const before = await signature();
    await input.press('Enter');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!(await widget.isVisible()) || (await signature()) !== before) return;
      await this.page.waitForTimeout(50);
    }
    throw new Error(`The quick input '${before}' did not accept the input.`);
  }

  /** In an open quick pick: filter by `text` and accept the first match. */
  async pick(title, text) {
    const widget = await this.waitForQuickInput(title);
    await widget.locator('input.input').fill(text);
    await widget.locator('.monaco-list-row', { hasText: text }).first().waitFor({ timeout: 10_000 });
    await this.submit(widget);
  }

  /** In an open input box: type `value` (replacing the suggestion) and accept it. */
  async type(title, value) {
    const widget = await this.waitForQuickInput(title);
    await widget.locator('input.input').fill(value);
    await this.submit(widget);
  }

  /** Accepts the suggestion (or current selection) of the open quick input. */
  async accept(title) {
    await this.submit(await this.waitForQuickInput(title));
  }

  /** Runs a command from the command palette by its title. */
  async command(title) {
    // Keys typed while a webview has focus may not reach the workbench: focus the sidebar first,
    // and press F1 again if the palette does not open.
    const widget = this.quickInput();
    // A quick input still open, or still fading out, from an earlier step would take the typed command.
    await this.closeQuickInput();
    for (let attempt = 0; attempt < 3 && !(await widget.isVisible()); attempt++) {
      await this.page.locator('.part.sidebar .composite.title').click();
      await this.page.keyboard.press('F1');
      await widget.waitFor({ state: 'visible', timeout: 5000 }).catch(() => {});
    }
    await widget.locator('input.input').fill(`>${title}`);
    await widget.locator('.monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10_000 });
    await this.submit(widget);
  }

  /** A notification toast whose message matches `text`. */
  toast(text) {
    return this.page.locator('.notifications-toasts .notification-toast').filter({ hasText: text });
  }

  /** Records every notification message shown from now on (progress messages change quickly). */
  async recordNotifications() {
    await this.page.evaluate(() => {
      const seen = (window.__rlabNotifications = []);
      const collect = () => {
        for (const el of document.querySelectorAll('.notifications-toasts .notification-list-item')) {
          const text = el.textContent ?? '';
          if (seen[seen.length - 1] !== text) seen.push(text);
        }
      };
      window.__rlabObserver?.disconnect();
      window.__rlabObserver = new MutationObserver(collect);
      window.__rlabObserver.observe(document.body, { subtree: true, childList: true, characterData: true });
    });
  }

  recordedNotifications() {
    return this.page.evaluate(() => window.__rlabNotifications ?? []);
  }

  /** The results webview's content frame. */
  resultsFrame() {
    return this.page.frameLocator('iframe.webview.ready').last().frameLocator('iframe#active-frame');
  }
}

/** A node:test test that saves a screenshot named after it when it fails. */
export function uiTest(workbench, name, fn) {
  return test(name, async (t) => {
    try {
      // Start from a quiet workbench: no quick input or menu left open by an earlier test.
      for (let i = 0; i < 3; i++) await workbench()?.page.keyboard.press('Escape');
      await workbench()?.closeQuickInput();
      await fn(t);
    } catch (e) {
      await workbench()
        ?.screenshot(`FAILED ${name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}`)
        .catch(() => {});
      throw e;
    }
  });
}
