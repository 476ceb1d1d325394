// Drives the bundled server's page in Debian's headless Chromium (playwright-core) and
// prints what the page shows as JSON: the rows of its results table, its verdict, the
// JSON it offers, and what the "Copy JSON" button put on the clipboard.
//   node check-page.js URL [SCREENSHOT.png]
// MAP_HOSTS (optional) is passed to --host-resolver-rules, e.g. "MAP *.apps.wscheck.test 127.0.0.1".
const { chromium } = require('playwright-core');

(async () => {
  const [url, screenshot] = process.argv.slice(2);
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors'];
  if (process.env.MAP_HOSTS) args.push('--host-resolver-rules=' + process.env.MAP_HOSTS);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
  try {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
    const page = await context.newPage();
    await page.goto(url);
    page.on('console', (m) => console.error('console:', m.text()));
    try {
      await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', null, { timeout: 60000 });
    } catch (e) {
      if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
      console.error('page state:', await page.evaluate(() => document.body.dataset.state),
        await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => tr.textContent)));
      throw e;
    }
    const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((tr) => ({
      check: tr.dataset.check,
      url: tr.querySelector('.url').textContent,
      result: tr.querySelector('.result').textContent,
      detail: tr.querySelector('.detail').textContent,
    })));
    const verdict = await page.textContent('#verdict');
    const json = await page.inputValue('#json');
    await page.click('#copy');
    await page.waitForFunction(() => document.getElementById('copied').textContent !== '');
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ rows, verdict, json: JSON.parse(json), clipboard }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e); process.exit(1); });
