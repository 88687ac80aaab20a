// The desk end to end in Debian's Chromium (headless), driven by playwright-core.
//
// A new user of a fresh tenant, given only the URL and a password, signs in with the
// keyboard, makes the company, its fiscal year and two accounts, writes a journal entry of
// three lines, sees the error for the unbalanced entry, fixes and submits it, finds it in
// the trial balance and its ledger, cancels it and reads its history. Every step finds
// elements by their labels and roles, as a screen reader would. Screenshots of the key
// pages go to $SCREENSHOTS (target/e2e by default), at desktop and phone widths.
//
// BASE_URL (http://acme.localhost:PORT), EMAIL and PASSWORD come from scripts/desk-e2e.sh.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import assert from "node:assert/strict";

const base = process.env.BASE_URL;
const email = process.env.EMAIL;
const password = process.env.PASSWORD;
const shots = process.env.SCREENSHOTS || "../target/e2e";
if (!base || !email || !password) {
  console.error("BASE_URL, EMAIL and PASSWORD are required");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });

const today = new Date().toISOString().slice(0, 10);
const year = today.slice(0, 4);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const problems = [];
let step = "start";
async function run(name, body) {
  step = name;
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

function watch(page) {
  page.on("console", (message) => {
    // A form shown again with its errors answers 422, which Chromium logs; that is meant.
    if (message.type() === "error" && !/status of 422/.test(message.text())) problems.push(`${step}: console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`${step}: script error: ${error.message}`));
  page.on("dialog", (dialog) => dialog.accept());
}

// Fills a field found by its label, exactly.
async function fill(page, label, value) {
  await page.getByLabel(label, { exact: true }).fill(value);
}

async function save(page) {
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.waitForLoadState("load");
}

// The page may not be wider than the screen (no sideways scrolling of the whole page).
async function fitsWidth(page) {
  const [scroll, width] = await page.evaluate(() => [
    document.documentElement.scrollWidth,
    window.innerWidth,
  ]);
  assert.ok(scroll <= width + 1, `page is ${scroll}px wide on a ${width}px screen`);
}

const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
try {
  watch(page);

  await run("signed out, the desk asks to sign in", async () => {
    await page.goto(`${base}/app`);
    assert.match(page.url(), /\/app\/login/);
    await page.getByRole("heading", { name: /Sign in/ }).waitFor();
    await shot(page, "01-login");
  });

  await run("sign in with the keyboard only", async () => {
    await page.getByLabel("Email").focus();
    await page.keyboard.type(email);
    await page.keyboard.press("Tab");
    await page.keyboard.type(password);
    await page.keyboard.press("Enter");
    await page.waitForURL(`${base}/app`);
    await page.getByRole("heading", { name: "Home" }).waitFor();
    await shot(page, "02-home");
  });

  await run("create the company and its fiscal year", async () => {
    await page.getByRole("link", { name: "Company", exact: true }).click();
    await page.getByRole("link", { name: "New Company" }).click();
    await fill(page, "Company name", "Acme Ltd");
    await fill(page, "Abbr", "ACME");
    await fill(page, "Currency", "USD");
    await save(page);
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await page.goto(`${base}/app/e/fiscal_year/new`);
    await fill(page, "Year name", `FY ${year}`);
    await fill(page, "Company", "Acme Ltd");
    await fill(page, "Start date", `${year}-01-01`);
    await fill(page, "End date", `${year}-12-31`);
    await save(page);
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  });

  await run("create two accounts", async () => {
    for (const [name, path, root, parent] of [
      ["Petty cash", "assets:current:petty-cash", "Asset", "assets:current"],
      ["Consulting", "income:consulting", "Income", "income"],
    ]) {
      await page.goto(`${base}/app/e/account`);
      await page.getByRole("link", { name: "New Account" }).click();
      await fill(page, "Account name", name);
      await fill(page, "Account path", path);
      await fill(page, "Company", "Acme Ltd");
      await page.getByLabel("Root type", { exact: true }).selectOption(root);
      await fill(page, "Parent Account", parent);
      await save(page);
      await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    }
    await page.goto(`${base}/app/e/account?q=petty`);
    await page.getByText("1 Account record").waitFor();
    await shot(page, "03-account-list");
  });

  await run("write a journal entry of three lines with running totals", async () => {
    await page.goto(`${base}/app`);
    await page.getByRole("link", { name: "Journal Entry", exact: true }).click();
    await page.getByRole("link", { name: "New Journal Entry" }).click();
    await fill(page, "Company", "Acme Ltd");
    await fill(page, "Posting date", today);
    await fill(page, "Title", "Consulting fees");
    await page.getByRole("button", { name: "Add row" }).click();
    // The second row by keyboard: the button is reached and pressed without a mouse.
    await page.getByRole("button", { name: "Add row" }).focus();
    await page.keyboard.press("Enter");
    await page.getByLabel("Account, row 3", { exact: true }).waitFor();
    const lines = [
      ["assets:current:petty-cash", "100.00", ""],
      ["income:consulting", "", "60.00"],
      ["income:consulting", "", "30.00"],
    ];
    for (const [i, [account, debit, credit]] of lines.entries()) {
      await fill(page, `Account, row ${i + 1}`, account);
      if (debit) await fill(page, `Debit, row ${i + 1}`, debit);
      if (credit) await fill(page, `Credit, row ${i + 1}`, credit);
    }
    const difference = page.locator("output[data-diff]");
    assert.equal(await difference.textContent(), "10.00");
    await page.getByText("Not balanced").waitFor();
    await shot(page, "04-journal-entry-unbalanced");
    await save(page);
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
  });

  await run("the unbalanced entry is refused on submit, with the reason", async () => {
    await page.getByRole("button", { name: "Submit", exact: true }).click();
    const alert = page.getByRole("alert");
    await alert.filter({ hasText: "differ by 10.00 USD" }).waitFor();
    await shot(page, "05-journal-entry-error");
  });

  await run("fix the entry and submit it", async () => {
    await fill(page, "Credit, row 3", "40.00");
    assert.equal(await page.locator("output[data-diff]").textContent(), "0.00");
    await page.getByText("Balanced", { exact: true }).waitFor();
    await save(page);
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    await page.getByRole("button", { name: "Submit", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Submitted." }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Save", exact: true }).count(), 0);
    await shot(page, "06-journal-entry-submitted");
  });

  await run("find it in the trial balance and drill down to the ledger", async () => {
    await page.goto(`${base}/app`);
    await page.getByRole("link", { name: "Trial balance" }).click();
    const row = page.getByRole("row").filter({ hasText: "Petty cash" });
    await row.filter({ hasText: "100.00" }).waitFor();
    await shot(page, "07-trial-balance");
    await row.getByRole("link", { name: "Petty cash" }).click();
    await page.getByRole("heading", { name: /General ledger: assets:current:petty-cash/ }).waitFor();
    await page.getByRole("row").filter({ hasText: "100.00" }).first().waitFor();
    await shot(page, "08-general-ledger");
  });

  await run("chart of accounts, balance sheet and profit and loss", async () => {
    await page.goto(`${base}/app/accounting/chart`);
    await page.getByText("Dr 100.00").first().waitFor();
    await shot(page, "09-chart-of-accounts");
    await page.goto(`${base}/app/accounting/profit-and-loss`);
    await page.locator("svg[role=img]").waitFor();
    await shot(page, "10-profit-and-loss");
    await page.goto(`${base}/app/accounting/balance-sheet`);
    await page.getByText("Assets equal liabilities").waitFor();
    await shot(page, "11-balance-sheet");
  });

  await run("cancel the entry and read its history", async () => {
    await page.goto(`${base}/app/accounting/general-ledger`);
    await page.getByRole("link", { name: /^JE-/ }).first().click();
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Cancelled." }).waitFor();
    await page.getByRole("button", { name: "Amend" }).waitFor();
    await page.getByRole("link", { name: "History" }).click();
    for (const action of ["create", "update", "submit", "cancel"]) {
      await page.locator(".history .action", { hasText: action }).first().waitFor();
    }
    await shot(page, "12-history");
    await page.getByRole("link", { name: "Audit log verification status" }).click();
    await page.getByText("Verified.").waitFor();
    await shot(page, "13-audit");
  });

  await run("administration pages", async () => {
    await page.goto(`${base}/app/admin/users`);
    await page.getByRole("cell", { name: email }).or(page.getByRole("link", { name: email })).first().waitFor();
    await shot(page, "14-users");
    await page.goto(`${base}/app/admin/settings`);
    await page.getByLabel("app.timezone").waitFor();
  });

  await run("a phone-sized screen: no sideways scrolling, every page usable", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [path, name] of [
      ["/app", "15-phone-home"],
      ["/app/e/journal_entry", "16-phone-list"],
      ["/app/e/journal_entry/new", "17-phone-journal-entry"],
      ["/app/accounting/trial-balance", "18-phone-trial-balance"],
    ]) {
      await page.goto(`${base}${path}`);
      await fitsWidth(page);
      await shot(page, name);
    }
  });

  await run("sign out", async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/app\/login/);
    await page.goto(`${base}/app`);
    assert.match(page.url(), /\/app\/login/);
  });

  // The policy allows no inline script and no other origin; any violation is an error.
  assert.deepEqual(problems, [], problems.join("\n"));
  console.log(`passed; screenshots in ${shots}`);
} catch (error) {
  console.error(`FAILED at "${step}": ${error.stack || error}`);
  await shot(page, "failure").catch(() => {});
  console.error(`the page at the failure: ${page.url()} (${shots}/failure.png)`);
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
