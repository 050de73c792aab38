// The web application's main journeys, in real Chromium (Debian's, driven
// by playwright-core), against a running `cpis demo`:
//
//   node browser.mjs BASE_URL SCREENSHOT_DIR
//
// Every page visited is checked with axe-core (no serious or critical
// violations) and for requests to any other site, and the flag page on a
// phone-sized screen for sideways scrolling; server times are printed. Screenshots of the main pages
// go to SCREENSHOT_DIR. Prints one line per check; exits 1 on the first
// failure, naming it.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node browser.mjs BASE_URL SCREENSHOT_DIR');
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

// The demo's worked examples (see `cpis demo`'s output).
const FLAGGED = '999 893 5822'; // an open CPP in the demo LA
const SHORT = '999-893-582'; // typed badly: one digit short
const UNFLAGGED = '9999648533';
const CHROMIUM = process.env.CPIS_CHROMIUM || '/usr/bin/chromium';

const timings = [];
const foreign = [];

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}

function check(condition, message) {
  if (!condition) fail(message);
  console.log(`ok: ${message}`);
}

async function axe(page, name) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    fail(
      `${name}: accessibility violations: ` +
        bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; '),
    );
  }
  console.log(`ok: ${name}: no serious or critical axe violations (${result.violations.length} minor)`);
}

async function serverTime(page, name) {
  const ms = await page.evaluate(() => {
    const [nav] = performance.getEntriesByType('navigation');
    return nav ? nav.responseStart - nav.requestStart : 0;
  });
  timings.push({ page: name, ms });
}

/** Checks the page now shown: accessible, timed, and optionally kept as a screenshot. */
async function looked(page, name, { shot = true } = {}) {
  await serverTime(page, name);
  await axe(page, name);
  if (shot) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function newSession(browser, options = {}) {
  const context = await browser.newContext({ bypassCSP: true, ...options });
  const page = await context.newPage();
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(base) && !url.startsWith('data:')) foreign.push(url);
  });
  return { context, page };
}

async function signIn(page, displayName) {
  await page.goto(`${base}/`);
  await page.getByTestId('sign-in').click();
  await page.getByRole('button', { name: displayName }).click();
  await page.waitForLoadState('load');
  const principal = await page.getByTestId('principal').innerText();
  check(principal.includes(displayName), `signed in as ${displayName}, and the header says so ("${principal.replace(/\s+/g, ' ')}")`);
}

async function search(page, number) {
  await page.goto(`${base}/app/search`);
  await page.getByLabel('Search by NHS number').fill(number);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForLoadState('load');
}

async function refused(page, path, who) {
  const response = await page.goto(`${base}${path}`);
  check(response.status() === 403, `${who} is refused ${path} (${response.status()})`);
  const text = await page.getByTestId('error-message').innerText();
  check(text.length > 0, `${who} is told why: "${text}"`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  try {
    // Anyone: the start page, and a page that needs a session sends you to sign in.
    {
      const { context, page } = await newSession(browser);
      await page.goto(`${base}/`);
      await looked(page, 'start');
      await page.goto(`${base}/app/search`);
      check(page.url().includes('/oauth2/authorize'), 'a page that needs a session sends a stranger to sign in');
      await context.close();
    }

    // A clinician in an emergency department.
    {
      const { context, page } = await newSession(browser);
      await signIn(page, 'Dr Amara Okafor');
      check(page.url().endsWith('/app/search'), 'the clinician starts at the search');
      await looked(page, 'search');

      await search(page, SHORT);
      check((await page.locator('.nhsuk-error-message').innerText()).includes('10 digits'), 'a short NHS number gets an inline error');
      check(await page.locator('.nhsuk-error-summary a[href="#nhs-number"]').isVisible(), 'the error summary links to the field');
      await looked(page, 'search-error');

      await search(page, '943 476 5918');
      check((await page.locator('.nhsuk-error-message').innerText()).includes('check digit'), 'a wrong check digit gets its own error');

      await search(page, FLAGGED);
      const banner = page.getByTestId('flag-banner');
      check(await banner.isVisible(), 'a flagged child shows the banner');
      check((await banner.innerText()).includes('Child protection plan'), 'the banner names the plan type');
      const phones = await page.locator('[data-testid=authority] a[href^="tel:"]').count();
      check(phones === 2, `the responsible authority's two numbers are tel: links (${phones})`);
      await looked(page, 'flagged');

      await search(page, UNFLAGGED);
      check(await page.getByTestId('no-flag').isVisible(), 'an unflagged child says there is no child protection information');
      check((await page.getByTestId('flag-banner').count()) === 0, 'and shows no banner');
      await looked(page, 'not-flagged');

      await refused(page, '/app/la', 'a clinician');
      await refused(page, '/app/reports', 'a clinician');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForLoadState('load');
      const after = await page.goto(`${base}/app/search`);
      check(after.url().includes('/oauth2/authorize'), 'signing out ends the session');
      await context.close();
    }

    // The same child on a phone: readable without sideways scrolling.
    {
      const { context, page } = await newSession(browser, { viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
      await signIn(page, 'Dr Amara Okafor');
      await search(page, FLAGGED);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(overflow <= 0, `the flag page fits a phone's width (overflow ${overflow}px)`);
      await looked(page, 'flagged-phone');
      await context.close();
    }

    // A GP: sees the flag silently.
    {
      const { context, page } = await newSession(browser);
      await signIn(page, 'Dr Ben Hartley');
      await search(page, FLAGGED);
      check(await page.getByTestId('flag-banner').isVisible(), 'a GP sees the banner too');
      check((await page.locator('main').innerText()).includes('recorded as scheduled care'), 'and is told the look is scheduled, not notified');
      await context.close();
    }

    // The local authority's social worker.
    {
      const { context, page } = await newSession(browser);
      await signIn(page, 'Sam Carter');
      check(page.url().endsWith('/app/la'), 'the social worker starts at the dashboard');
      const notifications = await page.getByTestId('notifications').innerText();
      check(notifications.includes('Dr Amara Okafor'), "the dashboard lists the clinician's look");
      check(!notifications.includes('Dr Ben Hartley'), "and not the GP's, which was scheduled");
      await looked(page, 'la-dashboard');

      await page.goto(`${base}/app/la/uploads`);
      await page.setInputFiles('#file', {
        name: 'plans.csv',
        mimeType: 'text/csv',
        buffer: Buffer.from(
          'nhs_number,plan_type,start_date,local_reference\n' +
            '9434765919,CPP,2026-01-05,WEB-1\n' +
            '9434765918,CPP,2026-01-05,WEB-2\n' +
            '9434765870,LAC,2031-01-01,WEB-3\n',
        ),
      });
      await looked(page, 'la-upload-form');
      await page.getByRole('button', { name: 'Upload' }).click();
      await page.waitForLoadState('load');
      check((await page.getByTestId('file-code').innerText()).startsWith('CPF03'), 'the acknowledgement says some records were rejected');
      check((await page.getByTestId('accepted').innerText()) === '1', 'one record accepted');
      check((await page.getByTestId('rejected').innerText()) === '2', 'two rejected');
      const first = await page.locator('[data-testid=records] tbody tr').first().innerText();
      check(first.includes('CPR'), `rejected rows come first ("${first.replace(/\s+/g, ' ')}")`);
      await looked(page, 'la-acknowledgement');
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByText('Download these records as CSV').click(),
      ]);
      const csvPath = join(shots, 'acknowledgement.csv');
      await download.saveAs(csvPath);
      console.log(`ok: the acknowledgement downloads as CSV (${download.suggestedFilename()})`);

      await page.goto(`${base}/app/la/plans`);
      await page.getByLabel('NHS number', { exact: true }).fill('943 476 5919');
      await page.getByRole('button', { name: 'Show plans' }).click();
      await page.waitForLoadState('load');
      check((await page.getByTestId('plan-count').innerText()).startsWith('1 '), 'the uploaded plan is found by NHS number');
      check(!page.url().includes('9434765919'), 'and the NHS number is not in the address');

      // Changes sent with the session cookie but without the form's token are refused.
      const forged = await page.request.post(`${base}/app/la/uploads`, {
        multipart: { mode: 'changes', file: { name: 'f.csv', mimeType: 'text/csv', buffer: Buffer.from('nhs_number,plan_type,start_date\n') } },
      });
      check(forged.status() === 403, `an upload without the form's token is refused (${forged.status()})`);
      const forgedSettings = await page.request.post(`${base}/app/la/settings`, {
        form: { name: 'Forged', emergency_duty_number: '01632 960000', office_hours_number: '01632 960001', organisations: '3', days: '30' },
      });
      check(forgedSettings.status() === 403, `a settings change without the form's token is refused (${forgedSettings.status()})`);
      await page.goto(`${base}/app/la/plans?type=CPP`);
      await looked(page, 'la-plans');
      await page.goto(`${base}/app/la/webhook`);
      await looked(page, 'la-webhook');
      await page.goto(`${base}/app/la/settings`);
      await looked(page, 'la-settings');
      await refused(page, '/app/search', 'a social worker');
      await refused(page, '/app/reports', 'a social worker');
      await context.close();
    }

    // The privacy officer.
    {
      const { context, page } = await newSession(browser);
      await signIn(page, 'Priya Shah');
      check(page.url().includes('/app/reports'), 'the privacy officer starts at the reports');
      await looked(page, 'reports-form', { shot: false });
      await page.getByLabel('NHS number, user ID or ODS code').fill(FLAGGED);
      await page.getByRole('button', { name: 'Show accesses' }).click();
      await page.waitForLoadState('load');
      const report = await page.getByTestId('report').innerText();
      check(report.includes('Dr Amara Okafor') && report.includes('Unscheduled'), "the report lists the clinician's look");
      check(report.includes('Dr Ben Hartley') && report.includes('Scheduled'), "and the GP's scheduled one");
      await looked(page, 'report');
      check(!page.url().includes('9998935822'), 'the report by NHS number keeps it out of the address');
      const [report_csv] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Download as CSV' }).click(),
      ]);
      const reportPath = join(shots, 'report.csv');
      await report_csv.saveAs(reportPath);
      const csv = readFileSync(reportPath, 'utf8');
      check(csv.split('\n')[0].startsWith('at,nhs_number') && csv.includes('Dr Amara Okafor'), 'the report downloads as CSV with the look in it');
      await page.goto(`${base}/app/audit`);
      await page.getByRole('button', { name: 'Check the whole log now' }).click();
      await page.waitForLoadState('load');
      check(await page.getByTestId('verified').isVisible(), 'the audit log verifies');
      await looked(page, 'audit');
      await refused(page, '/app/search', 'a privacy officer');
      await refused(page, '/app/la', 'a privacy officer');
      await context.close();
    }

    // A clerk without CP-IS activities.
    {
      const { context, page } = await newSession(browser);
      await page.goto(`${base}/auth/sign-in?return_to=/app`);
      await page.getByRole('button', { name: 'Jo Bloggs' }).click();
      await page.waitForLoadState('load');
      check((await page.getByTestId('error-message').innerText()).length > 0, 'a clerk without the activities is told they have no use of the service');
      await refused(page, '/app/search', 'a clerk');
      await context.close();
    }

    check(foreign.length === 0, `no request left the server (${foreign.join(', ') || 'none'})`);
    const slowest = timings.reduce((a, b) => (b.ms > a.ms ? b : a), { ms: 0 });
    writeFileSync(join(shots, 'timings.json'), JSON.stringify(timings, null, 2));
    // Speed is measured by `cargo xtask bench pages`, not asserted here.
    console.log(`server time per page (for information): slowest ${slowest.page} ${slowest.ms.toFixed(1)} ms over ${timings.length} pages`);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  if (!process.exitCode) {
    console.error(`FAIL: ${error.stack || error}`);
    process.exitCode = 1;
  }
});
