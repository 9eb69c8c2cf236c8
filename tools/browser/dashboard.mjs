// The dashboard's browser test, run by internal/e2e/dashboard_test.go
// (TestDashboardInBrowser) with DASHBOARD_TEST holding what the Go test set
// up: the API's URL and key, the runs, the callback URLs, the schedule. It
// drives Debian's chromium through every page and fails (exit 1) on the
// first unmet expectation or on any console error.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const p = JSON.parse(process.env.DASHBOARD_TEST);
mkdirSync(p.shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: p.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const errors = [];
const timeout = 15000;
// The pages answered with an error status on purpose (a wrong key, an
// invalid answer): a browser logs those as console errors too.
const expected = [
  /\/login: Failed to load resource: the server responded with a status of 401/,
  /\/inputs\/assess: Failed to load resource: the server responded with a status of 422/,
  /\/runs\/bulk: Failed to load resource: the server responded with a status of 422/,
  /\/retry: Failed to load resource: the server responded with a status of 422/,
];

function check(ok, what) {
  if (!ok) throw new Error("expected: " + what);
  console.log("ok:", what);
}

async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (m) => {
    const line = page.url() + ": " + m.text();
    if (m.type() === "error" && !expected.some((re) => re.test(line))) errors.push(line);
  });
  page.on("pageerror", (e) => errors.push(page.url() + ": " + e.message));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: join(p.shots, name + ".png"), fullPage: true });
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await newPage(context);

  // Login: a page needs a session; a wrong key is refused, the right one
  // lets in and goes back where it was sent from.
  await page.goto(p.url + "/runs?workflow=orders");
  check(page.url().includes("/login"), "a page without a session sends to the login page");
  await page.getByLabel("API key").fill("not-the-key");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.getByText("That API key is not accepted.").waitFor();
  check(true, "a wrong API key is refused");
  await shot(page, "login");
  await page.getByLabel("API key").fill(p.key);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/runs\?workflow=orders/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "durable_session");
  check(session && session.httpOnly && session.secure && session.sameSite === "Strict", "the session cookie is HttpOnly, Secure and SameSite=Strict");

  // The runs page: real runs, counts by status, filters in the URL.
  await page.goto(p.url + "/runs");
  await page.locator(`tr[data-run="${p.shipped}"]`).waitFor();
  const succeeded = await page.locator('[data-count="succeeded"] strong').textContent();
  check(Number(succeeded.replace(/,/g, "")) >= 1, "the runs page counts succeeded runs: " + succeeded);
  await page.getByRole("checkbox", { name: "waiting" }).check();
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/status=waiting/);
  check(await page.locator(`tr[data-run="${p.review}"]`).count() === 1, "the status filter is in the URL and keeps a waiting run");
  check(await page.locator(`tr[data-run="${p.paid}"]`).count() === 0, "the status filter leaves a succeeded run out");
  await page.goto(p.url + "/runs");
  await shot(page, "runs");

  // CSRF: a POST without the session's token, or from another origin, is
  // refused and changes nothing.
  let res = await page.request.post(p.url + "/runs/" + p.review + "/cancel", { form: { reason: "forged" } });
  check(res.status() === 403, "a POST without a CSRF token is refused (" + res.status() + ")");
  res = await page.request.post(p.url + "/runs/" + p.review + "/cancel", { form: { csrf: "forged", reason: "forged" } });
  check(res.status() === 403, "a POST with a wrong CSRF token is refused (" + res.status() + ")");
  res = await page.request.post(p.url + "/runs/" + p.review + "/cancel", { form: { reason: "x" }, headers: { Origin: "https://evil.example" } });
  check(res.status() === 403, "a POST from another origin is refused (" + res.status() + ")");

  // Bulk cancel from the runs page: a filter that is empty is refused
  // with the API's message; a filter's dry-run count is shown first, then
  // confirmed, and the operation's progress page shows every matched run
  // done.
  await page.goto(p.url + "/runs");
  await page.getByRole("button", { name: "Count them first" }).click();
  await page.getByText("the filter is empty").first().waitFor();
  check(true, "a bulk action with an empty filter is refused with the API's message");
  await page.goto(p.url + "/runs?workflow=hold&status=waiting");
  for (const id of p.held) await page.locator(`tr[data-run="${id}"]`).waitFor();
  await page.getByLabel("All runs matching the filters:").selectOption("cancel");
  await page.locator("#bulk-reason").fill("clean up");
  await page.getByRole("button", { name: "Count them first" }).click();
  const count = await page.locator("#bulk-count").textContent();
  check(count.includes("This will cancel 3 runs"), "the dry-run count is shown first: " + count);
  await shot(page, "bulk");
  await page.getByRole("button", { name: "Yes, cancel 3 runs" }).click();
  await page.waitForURL(/\/operations\//);
  await page.locator("#op-state").getByText("succeeded").waitFor({ timeout: 30000 });
  check(await page.locator("#op-matched").textContent() === "3" && await page.locator("#op-done").textContent() === "3",
    "the operation's progress shows 3 matched, 3 done, updated on the page");
  await shot(page, "operation");

  // The runs ticked on the list are cancelled each, and the page says
  // what happened to each.
  await page.goto(p.url + "/runs?workflow=park");
  for (const id of p.parked) await page.getByLabel("Select run " + id).check();
  await page.locator("#selected-reason").fill("not needed");
  await page.getByRole("button", { name: "Cancel the selected runs" }).click();
  await page.waitForURL(/\/runs\/selected/);
  for (const id of p.parked) {
    check(await page.locator(`[data-result="${id}"]`).textContent().then((t) => t.includes("done")), "the selected run " + id + " was cancelled");
  }

  // A failed run retried from its page: a patch that is not JSON is
  // refused on its field, then an edited input makes it succeed.
  await page.goto(p.url + "/runs/" + p.flaky);
  await page.locator("#run-status").getByText("failed").waitFor();
  await page.getByLabel("From step").selectOption("try");
  await page.getByLabel("Input patch (JSON)").fill('{"fixed": tru');
  await page.getByRole("button", { name: "Retry the run" }).click();
  await page.locator("#retry-input-error").waitFor();
  check(/not valid JSON/.test(await page.locator("#retry-input-error").textContent()), "a bad input patch is refused next to its field");
  check(await page.getByLabel("Input patch (JSON)").inputValue() === '{"fixed": tru', "the refused patch is kept in the form");
  await shot(page, "run-retry");
  await page.getByLabel("Input patch (JSON)").fill('{"fixed": true}');
  await page.getByRole("button", { name: "Retry the run" }).click();
  await page.waitForURL(new RegExp("/runs/" + p.flaky + "$"));
  await page.locator("#run-status").getByText("succeeded").waitFor({ timeout: 30000 });
  check(true, "the retry with an edited input made the failed run succeed");

  // Workflows: the list, a workflow's versions, definition and graph.
  await page.goto(p.url + "/workflows");
  await page.getByRole("link", { name: "orders" }).first().click();
  await page.waitForURL(/\/workflows\/orders/);
  await page.locator(".graph canvas").first().waitFor();
  check(await page.locator("pre.json").first().textContent().then((t) => t.includes('"charge"')), "the workflow page shows its definition");
  await shot(page, "workflow");
  await page.goto(p.url + "/workflows");
  await shot(page, "workflows");

  // A run: its status changes on screen when its callback completes it,
  // without a reload (the marker set on the window survives).
  await page.goto(p.url + "/runs/" + p.shipped);
  await page.locator(".graph canvas").first().waitFor();
  await page.locator("#run-status").getByText(/waiting|running/).waitFor();
  await page.evaluate(() => { window.notReloaded = true; });
  await page.waitForTimeout(500); // the live stream connects
  res = await fetch(p.shipCallback, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ status: "succeeded", output: { tracking: "TRK-1" } }) });
  check(res.status === 200, "the callback is accepted (" + res.status + ")");
  await page.locator("#run-status").getByText("succeeded").waitFor();
  check(await page.evaluate(() => window.notReloaded === true), "the run's status changed on screen without a reload");
  await page.locator("svg.timeline rect").first().waitFor();
  await page.locator("details.step", { hasText: "charge" }).first().locator("summary").click();
  await shot(page, "run");

  // The inbox: a form from a JSON Schema; the API's validation message is
  // shown on its field, then a valid answer resumes the run.
  await page.goto(p.url + "/inbox");
  const form = page.getByRole("form", { name: "Answer assess" });
  await form.waitFor();
  await shot(page, "inbox");
  await form.getByLabel("Note").fill("looks fine");
  await form.getByLabel("Score").fill("9");
  await form.getByRole("button", { name: "Send" }).click();
  const fieldError = page.locator(".field.invalid .error");
  await fieldError.waitFor();
  check(/5|maximum|less/i.test(await fieldError.textContent()), "the API's validation message is shown on its field: " + await fieldError.textContent());
  await page.getByLabel("Score").fill("4");
  await page.getByLabel("Urgent").check();
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForURL(new RegExp("/runs/" + p.review));
  await page.locator("#run-status").getByText("succeeded").waitFor();
  check(true, "the form answered in the browser resumed the run to its end");

  // The callback URL opened in a browser shows the same form on its own
  // page, answered without a session.
  const anon = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const mail = await newPage(anon);
  await mail.goto(p.approveURL);
  await mail.getByText("Ship order 42?").waitFor();
  await shot(mail, "callback");
  await mail.getByRole("button", { name: "Approve" }).click();
  await mail.getByText("Thank you").waitFor();
  check(true, "the callback page's form answered the approval");
  // The same browser has no session: the dashboard itself is closed to it.
  await mail.goto(p.url + "/runs");
  check(mail.url().includes("/login"), "the callback page gave no session");
  await anon.close();

  // Schedules: next fire times in their zone, triggered from the page.
  await page.goto(p.url + "/schedules");
  await page.getByRole("link", { name: "nightly-orders" }).click();
  check(/CES?T/.test(await page.locator("section", { hasText: "Next fire times" }).textContent()), "next fire times are in the schedule's zone");
  await page.getByRole("button", { name: "Trigger now" }).click();
  await page.locator("section", { hasText: "Fire history" }).getByText("manual").waitFor();
  check(true, "the schedule was triggered from its page");
  await shot(page, "schedule");
  await page.goto(p.url + "/schedules");
  await shot(page, "schedules");

  // Events: the recent event and the wait it resumed.
  await page.goto(p.url + "/events");
  await page.getByRole("cell", { name: "payment.received" }).waitFor();
  check(await page.locator(`a[href="/runs/${p.paid}"]`).count() === 1, "the event links the run whose wait it resumed");
  await shot(page, "events");

  // On a phone, in dark mode.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true });
  await phone.addCookies(cookies);
  const small = await newPage(phone);
  await small.goto(p.url + "/runs/" + p.shipped);
  await small.locator(".graph canvas").first().waitFor();
  await shot(small, "run-phone-dark");
  await phone.close();

  // Keyboard: the skip link is the first stop and leads to the content.
  await page.goto(p.url + "/runs");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.textContent) === "Skip to the content", "the first Tab reaches the skip link");

  check(errors.length === 0, "no console errors: " + errors.join(" | "));
} catch (e) {
  console.error(e);
  if (errors.length) console.error("console errors:", errors.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
