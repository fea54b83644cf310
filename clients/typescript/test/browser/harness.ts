/**
 * The real-browser test harness: Debian's headless Chromium (never a downloaded browser),
 * driven by playwright-core, with a fresh profile per launch. Browser tests of any part of the
 * project use it: start the server binary with the settings they need (re-exported from the
 * test support), open a page, read its DOM.
 *
 *   const browser = await Browser.launch();
 *   const page = await browser.open(`${server.http}/demo`);
 *   await page.waitForSelector("#state[data-state=connected]");
 *   await browser.close();
 *
 * A suite whose page must lose its connections declares `const site = siteBehindProxy();`: the
 * server, a proxy the test can cut in front of it, and Chromium, for all the suite's tests.
 *
 * Chromium is `/usr/bin/chromium` (`apt-get install -y chromium`), or `$CHROMIUM`.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { forTheSuite, ServerBehindProxy } from "../support/behind-proxy.js";
import { PATIENCE_MS } from "../support/server.js";

export { CutProxy } from "../support/proxy.js";
export { API_KEY, PATIENCE_MS, TestServer, token, type ServerOptions } from "../support/server.js";

/** The Chromium the tests drive. */
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/** Flags for a sandboxed machine without network: no sandbox (root), no GPU, no background traffic. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A headless Chromium with a profile of its own. */
export class Browser {
  private constructor(
    private readonly context: BrowserContext,
    private readonly profile: string,
    /** What pages wrote to their console and the errors they threw, for failure messages. */
    readonly console: string[],
  ) {}

  /** Launch Chromium with a fresh `--user-data-dir`. */
  static async launch(): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), "switchboard-chromium-"));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: PATIENCE_MS,
    });
    context.setDefaultTimeout(PATIENCE_MS);
    return new Browser(context, profile, []);
  }

  /** Open `url` in a new page and wait for it to load. */
  async open(url: string): Promise<Page> {
    const page = await this.context.newPage();
    page.on("console", (message) => this.console.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => this.console.push(`pageerror: ${error.message}`));
    await page.goto(url);
    return page;
  }

  /** Close the browser and remove its profile. */
  async close(): Promise<void> {
    await this.context.close();
    rmSync(this.profile, { recursive: true, force: true });
  }
}

/** The server, a proxy in front of it that the test can cut, and Chromium (see {@link siteBehindProxy}). */
export class SiteBehindProxy extends ServerBehindProxy {
  browser!: Browser;

  override async start(): Promise<void> {
    await super.start();
    this.browser = await Browser.launch();
  }

  override async stop(): Promise<void> {
    await this.browser?.close();
    await super.stop();
  }

  /** Open the server's page at `path` through the proxy, so that its connections go through it too. */
  open(path: string): Promise<Page> {
    return this.browser.open(`http://${this.proxy.address}${path}`);
  }
}

/** A {@link SiteBehindProxy} for the tests of the calling `describe`. */
export function siteBehindProxy(): SiteBehindProxy {
  return forTheSuite(new SiteBehindProxy());
}

/** The text of every element matching `selector`. */
export function texts(page: Page, selector: string): Promise<string[]> {
  return page.locator(selector).allTextContents();
}

/** The number in the `data-value` attribute of the element matching `selector` (pages that
 * show a formatted figure keep the raw one there, e.g. the operations dashboard). */
export async function dataValue(page: Page, selector: string): Promise<number> {
  const value = await page.locator(selector).getAttribute("data-value");
  if (value === null || value === "") throw new Error(`${selector} has no data-value`);
  return Number(value);
}
