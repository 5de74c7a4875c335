"""The dashboard, used as a person would: a real ``queueapp serve``, jobs made over
the API, and Debian's chromium clicking through the pages. Each page's screenshot
lands in a folder of the run's own (``make screenshots``: docs/img/)."""

from __future__ import annotations

import re

import pytest
from browser import call, chromium, watch
from playwright.sync_api import expect

pytestmark = pytest.mark.timeout(240)
ADMIN, READER = "admin-secret-7", "look-only-3"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def wide_page(browser, base: str):
    """A watched page in a fresh browser context (its own cookies), 1,280 px wide."""
    return watch(browser.new_context(viewport={"width": 1280, "height": 900}), base)


def logged_in(browser, base: str, secret: str):
    """A watched page of a fresh context logged in with ``secret`` (a token or a key)."""
    w = wide_page(browser, base)
    w.go("/ui/login")
    w.page.get_by_label("Token").fill(secret)
    w.page.get_by_role("button", name="Log in").click()
    return w


def _failed_emails(base: str, token: str | None = None) -> list[str]:
    """Twenty emails in queue "emails" (one holding markup in its data), two of them
    failed for good; a delayed report in queue "reports"."""
    jobs = [{"name": "send-email", "data": {"to": f"u{i}@example.com"}} for i in range(19)]
    jobs.append({"name": "send-email", "data": {"to": "x@example.com", "html": "<script>alert('x')</script>"}})
    status, _ = call(base, "POST", "/queues/jobs/bulk?queue=emails", {"jobs": jobs}, token)
    assert status == 201
    _, leased = call(base, "POST", "/queues/jobs/lease?queue=emails", {"max": 2, "leaseMs": 60_000}, token)
    for job in leased["jobs"]:
        status, _ = call(base, "POST", f"/queues/jobs/{job['id']}/fail",
                         {"leaseToken": job["leaseToken"], "error": "SMTP 550 mailbox unavailable", "retry": False},
                         token)
        assert status == 200
    call(base, "POST", "/queues/jobs?queue=reports", {"name": "report", "options": {"delay": 3_600_000}}, token)
    return [job["id"] for job in leased["jobs"]]


def test_an_operator_finds_a_queue_retries_a_failed_job_pauses_and_cancels(serve, browser):
    server = serve()
    failed = _failed_emails(server.url)
    w = wide_page(browser, server.url)
    page = w.page

    w.go("/ui/")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    card = page.get_by_role("region", name="Queue emails")
    expect(card).to_contain_text("critical")  # two of three finished jobs failed
    w.shot("overview")
    page.get_by_role("link", name="emails", exact=True).click()
    expect(page).to_have_url(re.compile(r"/ui/queues/emails"))

    page.get_by_role("button", name=re.compile(r"^failed \(2\)")).click()
    expect(page.get_by_role("button", name=re.compile(r"^Retry job"))).to_have_count(2)
    w.shot("queue")
    page.get_by_role("button", name=f"Retry job {failed[0]}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Retry: job {failed[0]}")
    assert call(server.url, "GET", f"/queues/jobs/{failed[0]}")[1]["state"] == "waiting"

    page.get_by_role("button", name="Pause queue emails").click()
    expect(page.get_by_role("button", name="Resume queue emails")).to_be_visible()
    assert [q["paused"] for q in call(server.url, "GET", "/queues")[1]["queues"] if q["name"] == "emails"] == [True]
    page.get_by_role("button", name="Resume queue emails").click()
    expect(page.get_by_role("button", name="Pause queue emails")).to_be_visible()
    assert [q["paused"] for q in call(server.url, "GET", "/queues")[1]["queues"] if q["name"] == "emails"] == [False]

    # The job whose data holds a script shows it as text, and nothing runs.
    _, page_of = call(server.url, "GET", "/queues/jobs?queue=emails&q=data.to%20contains%20%22x%40%22")
    marked = page_of["jobs"][0]["id"]
    w.go(f"/ui/jobs/{marked}")
    expect(page.locator("pre").first).to_contain_text("<script>alert('x')</script>")
    expect(page.get_by_role("button", name=f"Promote job {marked}")).to_be_disabled()
    w.shot("job")
    page.get_by_role("button", name=f"Cancel job {marked}").click()
    expect(page.get_by_role("heading", name=re.compile(f"Job {marked}"))).to_contain_text("cancelled")
    assert call(server.url, "GET", f"/queues/jobs/{marked}")[1]["state"] == "cancelled"
    expect(page.get_by_role("button", name=f"Retry job {marked}")).to_be_enabled()
    w.check()


def test_search_bulk_actions_and_the_other_pages(serve, browser):
    server = serve()
    failed = _failed_emails(server.url)
    w = wide_page(browser, server.url)
    page = w.page

    w.go("/ui/queues/emails")
    page.get_by_label("Search", exact=True).fill('data.to contains "u1"')
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_role("link", name=re.compile(r"^\d+$"))).to_have_count(10)  # u1, u10..u18
    expect(page.get_by_text("rows read")).to_be_visible()
    w.expect_console_error("status of 400")
    page.get_by_label("Search", exact=True).fill("data.to ~ 3")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator("#q-error")).to_contain_text("bad search")

    # Cancel every waiting job matching a filter, after confirming the count.
    w.go("/ui/queues/emails?state=waiting")
    page.get_by_role("button", name="Cancel all matching jobs").click()
    expect(page.locator("#confirm-text")).to_have_text("Cancel 18 jobs matching these filters?")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text("Cancel: 18 jobs changed")
    counts = [q["counts"] for q in call(server.url, "GET", "/queues")[1]["queues"] if q["name"] == "emails"][0]
    assert (counts["waiting"], counts["cancelled"]) == (0, 18)

    w.go("/ui/queues/emails/failed")
    group = page.get_by_role("region", name="Failure SMTP <n> mailbox unavailable")
    expect(group).to_contain_text("send-email")
    expect(group).to_contain_text("SMTP 550 mailbox unavailable")  # the example beside the fingerprint
    w.shot("failed")
    group.get_by_role("button", name="Retry all 2 jobs of this failure").click()
    expect(page.locator("#confirm-text")).to_contain_text("Retry 2 jobs")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("No failed job.")).to_be_visible()
    for job_id in failed:
        assert call(server.url, "GET", f"/queues/jobs/{job_id}")[1]["state"] == "waiting"

    _, leased = call(server.url, "POST", "/queues/jobs/lease?queue=emails",
                     {"max": 1, "leaseMs": 60_000, "worker": "mailer-7:4242"})
    w.go("/ui/queues/emails/workers")
    row = page.get_by_role("row", name=re.compile(leased["jobs"][0]["id"]))
    expect(row).to_contain_text("leased by mailer-7:4242")
    w.shot("workers")

    # A job that waits for another shows what it waits for, as a link.
    _, waiting = call(server.url, "GET", "/queues/jobs?queue=emails&state=waiting&limit=1")
    dep = waiting["jobs"][0]["id"]
    _, blocked = call(server.url, "POST", "/queues/jobs?queue=emails",
                      {"name": "digest", "options": {"dependsOn": [dep], "unique": {"key": "digest-1"}}})
    w.go(f"/ui/jobs/{blocked['id']}")
    expect(page.get_by_role("heading", name=re.compile(f"Job {blocked['id']}"))).to_contain_text("blocked")
    expect(page.get_by_role("link", name=dep, exact=True)).to_be_visible()
    expect(page.get_by_text("digest-1 (reject)")).to_be_visible()

    # 390 px wide: the pages still fit.
    page.set_viewport_size({"width": 390, "height": 844})
    w.go("/ui/")
    expect(page.get_by_role("link", name="emails", exact=True)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    w.shot("overview-narrow")
    w.go("/ui/queues/emails")
    expect(page.get_by_role("button", name=re.compile(r"^waiting \(")).first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    w.shot("queue-narrow")
    w.check()


def test_a_schedule_is_made_from_the_form_and_its_errors_show_beside_the_field(serve, browser):
    server = serve()
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/queues/reports/schedules")
    expect(page.get_by_text("No schedule in this queue.")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("nightly")
    page.get_by_label("Cron (minute hour day month weekday)").fill("61 * * * *")
    w.expect_console_error("status of 400")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.locator("#err-cron")).to_contain_text("invalid cron expression")
    assert call(server.url, "GET", "/queues/schedules?queue=reports")[1]["schedules"] == []

    page.get_by_label("Cron (minute hour day month weekday)").fill("0 2 * * 1-5")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Create schedule").click()
    row = page.get_by_role("row", name=re.compile("nightly"))
    expect(row).to_contain_text("at 02:00 on Monday to Friday (Europe/Berlin)")
    expect(row.locator("code")).to_have_text("0 2 * * 1-5")  # the rule itself beside its words
    expect(row.locator("li")).to_have_count(5)
    expect(row.locator("li").first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d 02:00:00 Europe/Berlin$"))
    w.shot("schedules")
    row.get_by_role("button", name="Run now schedule nightly").click()
    expect(page.get_by_role("status")).to_contain_text("Schedule nightly ran")
    ran = call(server.url, "GET", "/queues/schedules/nightly?queue=reports")[1]
    expect(row.get_by_role("link", name=f"job {ran['lastJobId']}")).to_be_visible()  # recorded as the last run
    row.get_by_role("button", name="Pause schedule nightly").click()
    expect(row.get_by_role("button", name="Resume schedule nightly")).to_be_visible()
    assert call(server.url, "GET", "/queues/schedules/nightly?queue=reports")[1]["enabled"] is False
    w.check()


def test_the_token_guards_the_dashboard_and_the_read_only_token_cannot_act(serve, browser):
    server = serve("--token", ADMIN, "--read-token", READER)
    _failed_emails(server.url, ADMIN)
    assert call(server.url, "GET", "/queues")[0] == 401

    w = wide_page(browser, server.url)
    admin, page = w.page.context, w.page
    w.go("/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.get_by_label("Token").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")
    w.shot("login")
    page.get_by_label("Token").fill(ADMIN)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="emails", exact=True)).to_be_visible()
    cookie = next(c for c in admin.cookies() if c["name"] == "queueapp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and ADMIN not in cookie["value"]
    page.get_by_role("button", name="Pause queue emails").click()
    expect(page.get_by_role("button", name="Resume queue emails")).to_be_visible()
    # The cookie alone does not let a script change anything: the CSRF header is needed.
    w.expect_console_error("status of 403")
    status = page.evaluate("fetch('/queues/resume?queue=emails', {method: 'POST'}).then(r => r.status)")
    assert status == 403
    w.check()

    r = logged_in(browser, server.url, READER)
    expect(r.page.locator("#role")).to_have_text("read-only")
    expect(r.page.get_by_role("button", name="Resume queue emails")).to_be_disabled()
    r.go("/ui/queues/emails?state=failed")
    expect(r.page.get_by_role("button", name=re.compile(r"^Retry job"))).to_have_count(2)
    for button in r.page.get_by_role("button", name=re.compile(r"^Retry job")).all():
        expect(button).to_be_disabled()
    r.expect_console_error("status of 403")
    csrf = r.page.evaluate("fetch('/ui/session').then(r => r.json()).then(s => s.csrf)")
    status = r.page.evaluate(
        "csrf => fetch('/queues/resume?queue=emails', {method: 'POST', headers: {'X-CSRF-Token': csrf}})"
        ".then(r => r.status)", csrf)
    assert status == 403
    assert call(server.url, "POST", "/queues/resume?queue=emails", token=READER)[0] == 403
    assert [q["paused"] for q in call(server.url, "GET", "/queues", token=ADMIN)[1]["queues"]
            if q["name"] == "emails"] == [True]
    r.check()


def test_groups_are_seen_paused_resumed_and_limited_from_the_dashboard(serve, browser):
    server = serve()
    base = server.url
    call(base, "PUT", "/queues/groups/policy?queue=tenants", {"concurrency": 2})
    jobs = [{"name": "sync", "options": {"group": key}} for key in ["acct-1"] * 5 + ["acct-2"] * 2]
    assert call(base, "POST", "/queues/jobs/bulk?queue=tenants", {"jobs": jobs})[0] == 201
    assert len(call(base, "POST", "/queues/jobs/lease?queue=tenants", {"max": 10})[1]["jobs"]) == 4
    w = wide_page(browser, base)
    page = w.page
    w.go("/ui/queues/tenants/groups")
    expect(page.get_by_text("Every key: 2 at once. Priority aging: off.")).to_be_visible()
    row = page.get_by_role("row", name=re.compile("acct-1"))
    expect(row).to_contain_text("2 at once")
    expect(row.locator("td").nth(2)).to_have_text("2")  # active
    expect(row.locator("td").nth(3)).to_have_text("3")  # waiting
    w.shot("groups")
    row.get_by_role("button", name="Pause group acct-1 for a minute").click()
    expect(row.get_by_role("button", name="Resume group acct-1")).to_be_visible()
    assert call(base, "GET", "/queues/groups/acct-1?queue=tenants")[1]["paused"] is True
    row.get_by_role("button", name="Resume group acct-1").click()
    expect(row.get_by_role("button", name="Pause group acct-1 for a minute")).to_be_visible()
    assert call(base, "GET", "/queues/groups/acct-1?queue=tenants")[1]["paused"] is False

    page.get_by_label("Starts").fill("5")
    w.expect_console_error("status of 400")
    page.get_by_role("button", name="Set limits of every key").click()
    expect(page.get_by_role("alert")).to_contain_text("perMs")
    assert call(base, "GET", "/queues/groups?queue=tenants")[1]["policy"]["rate"] is None
    page.get_by_label("At once per key").fill("3")
    page.get_by_label("per ms").fill("60000")
    page.get_by_role("button", name="Set limits of every key").click()
    expect(page.get_by_text("Every key: 3 at once, 5 per 1 min.", exact=False)).to_be_visible()  # in words
    assert call(base, "GET", "/queues/groups?queue=tenants")[1]["policy"] == {
        "concurrency": 3, "rate": {"max": 5, "perMs": 60_000}}

    w.go("/ui/queues/tenants")
    expect(page.get_by_role("row", name=re.compile("acct-2")).first).to_be_visible()
    why = page.get_by_role("note", name="Why jobs wait")  # the queue's own page says why its jobs wait
    expect(why).to_contain_text("3 jobs wait: 1 group key starts at most a number of jobs per period")
    call(base, "POST", "/queues/groups/acct-1/pause?queue=tenants")
    w.go("/ui/queues/tenants")
    expect(why).to_contain_text("1 group key is paused (3 jobs wait in them)")
    w.check()


def test_a_key_a_browser_would_resolve_away_never_acts_on_the_queue(serve, browser, db_path):
    """A group key ".." (refused now, stored by an earlier version) is shown, and its
    buttons say why they cannot act instead of pausing the queue (the browser
    resolves /queues/groups/../pause to /queues/pause)."""
    import sqlite3

    first = serve()
    assert call(first.url, "POST", "/queues/jobs", {"name": "sync", "options": {"group": "legacy"}})[0] == 201
    first.terminate()
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE jobs SET group_key = '..', options = json_set(options, '$.group', '..')")
    base = serve().url
    w = wide_page(browser, base)
    w.go("/ui/queues/default/groups")
    row = w.page.get_by_role("row", name=re.compile(r"\.\."))
    row.get_by_role("button", name="Pause group .. for a minute").click()
    expect(w.page.locator("#status")).to_contain_text("cannot stand in a URL's path")
    assert call(base, "GET", "/queues/metrics?queue=default")[1]["paused"] == 0
    assert not any(q["paused"] for q in call(base, "GET", "/queues")[1]["queues"])


def test_a_jobs_log_appears_live_and_a_failed_attempts_stack_can_be_read(serve, browser):
    server = serve()
    _, job = call(server.url, "POST", "/queues/jobs?queue=imports", {"name": "import", "options": {"attempts": 2}})
    _, leased = call(server.url, "POST", "/queues/jobs/lease?queue=imports", {"max": 1, "leaseMs": 60_000})
    token = leased["jobs"][0]["leaseToken"]  # leased without a name: its worker is its address
    call(server.url, "POST", f"/queues/jobs/{job['id']}/log", {"leaseToken": token, "lines": ["fetched 120 rows"]})
    w = wide_page(browser, server.url)
    page = w.page
    w.go(f"/ui/jobs/{job['id']}")
    log = page.get_by_role("region", name="Log")
    expect(log).to_contain_text("fetched 120 rows")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("waited")  # from due to started, and how long it has run
    expect(timeline).to_contain_text("running for")
    expect(timeline).to_contain_text(re.compile(r"started: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z"))
    expect(page.get_by_role("heading", name="Result")).to_have_count(0)  # nothing to show yet
    call(server.url, "POST", f"/queues/jobs/{job['id']}/log", {"leaseToken": token, "lines": ["row 77: no price"]})
    expect(log).to_contain_text("row 77: no price")  # while the page stays open
    expect(log.get_by_role("heading")).to_have_text("Log (2 lines)")
    trace = 'Traceback (most recent call last):\n  File "importer.py", line 7, in load\nKeyError: \'price\''
    call(server.url, "POST", f"/queues/jobs/{job['id']}/fail",
         {"leaseToken": token, "error": "KeyError: 'price'", "stack": trace})
    expect(page.get_by_text(re.compile(r"^ran \d+(\.\d+)? (ms|s)$"))).to_be_visible()  # the attempt's duration
    expect(page.get_by_text("on 127.0.0.1", exact=True)).to_be_visible()  # and where it ran
    opener = page.get_by_text("Stack trace of attempt 1")
    expect(opener).to_be_visible()
    opener.click()
    expect(page.locator("details.stack pre")).to_contain_text('File "importer.py", line 7, in load')
    call(server.url, "POST", f"/queues/jobs/{job['id']}/promote")  # the page redraws: the trace stays open
    expect(page.get_by_role("heading", name=re.compile(f"Job {job['id']}"))).to_contain_text("waiting")
    expect(page.locator("details.stack pre")).to_be_visible()
    w.shot("job-log")
    w.check()


def test_failures_differing_by_a_token_are_one_group_retried_as_one_and_listed_with_their_error(serve, browser):
    server = serve()
    jobs = [{"name": "push", "options": {"attempts": 1}} for _ in range(30)]
    call(server.url, "POST", "/queues/jobs/bulk?queue=pushes", {"jobs": jobs})
    _, leased = call(server.url, "POST", "/queues/jobs/lease?queue=pushes", {"max": 30, "leaseMs": 60_000})
    for n, job in enumerate(leased["jobs"]):
        call(server.url, "POST", f"/queues/jobs/{job['id']}/fail",
             {"leaseToken": job["leaseToken"], "error": f"APNs rejected device token {n:040x}"})
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/queues/pushes")
    page.get_by_role("button", name=re.compile(r"^failed \(30\)")).click()
    expect(page.get_by_role("columnheader", name="last error")).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("APNs rejected device token 0+1d$"))).to_be_visible()
    w.go("/ui/queues/pushes/failed")
    groups = page.get_by_role("region", name=re.compile("^Failure "))
    expect(groups).to_have_count(1)
    group = page.get_by_role("region", name="Failure APNs rejected device token <id>")
    group.get_by_role("button", name="Retry all 30 jobs of this failure").click()
    expect(page.locator("#confirm-text")).to_contain_text("Retry 30 jobs")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("No failed job.")).to_be_visible()
    states = {call(server.url, "GET", f"/queues/jobs/{job['id']}")[1]["state"] for job in leased["jobs"]}
    assert states == {"waiting"}
    w.check()



def test_deleting_a_job_asks_first_and_names_the_jobs_waiting_on_it(serve, browser):
    server = serve()
    _, parent = call(server.url, "POST", "/queues/jobs?queue=flows", {"name": "fetch", "options": {"delay": 3_600_000}})
    _, child = call(server.url, "POST", "/queues/jobs?queue=flows",
                    {"name": "ship", "options": {"dependsOn": [parent["id"]]}})
    w = wide_page(browser, server.url)
    page = w.page
    w.go(f"/ui/jobs/{parent['id']}")
    expect(page.get_by_role("link", name=child["id"], exact=True)).to_be_visible()  # its dependent, as a link
    page.get_by_role("button", name=f"Delete job {parent['id']}").click()
    expect(page.locator("#confirm-text")).to_have_text(
        f"Delete job {parent['id']}? 1 job waits on it ({child['id']}): it fails with it.")
    page.get_by_role("button", name="Keep them").click()
    assert call(server.url, "GET", f"/queues/jobs/{parent['id']}")[0] == 200  # nothing deleted
    assert call(server.url, "GET", f"/queues/jobs/{child['id']}")[1]["state"] == "blocked"

    # the queue's list: a select-all box, and actions only where they apply
    w.go("/ui/queues/flows?state=delayed")
    expect(page.get_by_role("button", name="Promote all matching jobs")).to_have_text("Promote all 1")
    expect(page.get_by_role("button", name="Retry selected jobs")).to_have_count(0)  # a delayed job is not retried
    page.get_by_role("checkbox", name="Select every job shown").check()
    expect(page.get_by_role("checkbox", name=f"Select job {parent['id']}")).to_be_checked()
    page.get_by_role("button", name="Delete selected jobs").click()
    expect(page.locator("#confirm-text")).to_contain_text(f"Delete job {parent['id']}?")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_contain_text("Delete: 1 job changed")
    assert call(server.url, "GET", f"/queues/jobs/{child['id']}")[1]["state"] == "failed"
    w.check()


def test_pages_in_the_url_a_missing_queue_the_selected_filter_and_dark_mode(serve, browser):
    server = serve()
    call(server.url, "POST", "/queues/jobs/bulk?queue=pages", {"jobs": [{"name": f"t{i}"} for i in range(60)]})
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/queues/pages?state=waiting")
    shown = page.get_by_label("Shown", exact=True)
    expect(shown).to_have_text("1–50 of 60")
    chips = page.get_by_role("group", name="Filter by state")
    selected, other = chips.get_by_role("button", name=re.compile("^waiting")), chips.get_by_role("button", name="all")
    expect(selected).to_have_attribute("aria-pressed", "true")
    background = "el => getComputedStyle(el).backgroundColor"
    assert selected.evaluate(background) != other.evaluate(background)  # the chosen filter is seen, not only read
    page.get_by_role("button", name="Next page").click()
    expect(page).to_have_url(re.compile(r"[?&]cursor=[0-9.]+.*page=2|page=2.*cursor="))
    expect(shown).to_have_text("51–60 of 60")
    page.go_back()
    expect(page).not_to_have_url(re.compile("cursor="))
    expect(shown).to_have_text("1–50 of 60")
    _, job = call(server.url, "GET", "/queues/jobs?queue=pages&limit=1")
    w.go(f"/ui/jobs/{job['jobs'][0]['id']}")
    expect(page.get_by_role("link", name="Jobs of pages")).to_be_visible()  # the queue's tabs stay

    w.go("/ui/queues/typo")
    expect(page.get_by_role("note")).to_contain_text('There is no queue named "typo"')
    expect(page.get_by_role("button", name=re.compile("^Pause"))).to_have_count(0)
    w.check()

    dark = watch(browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark"), server.url)
    dark.go("/ui/")
    body = "() => getComputedStyle(document.body).backgroundColor"
    expect(dark.page.get_by_role("heading", name="Queues")).to_be_visible()
    assert dark.page.evaluate(body) == "rgb(20, 23, 29)"
    dark.shot("overview-dark")
    dark.page.get_by_role("button", name="Use the light theme").click()
    assert dark.page.evaluate(body) == "rgb(247, 247, 248)"
    dark.go("/ui/")  # the choice is kept
    expect(dark.page.get_by_role("button", name="Use the dark theme")).to_be_visible()
    dark.check()


def test_the_audit_page_lists_an_action_just_taken(serve, browser):
    server = serve()
    call(server.url, "POST", "/queues/jobs/bulk?queue=billing", {"jobs": [{"name": "charge"}, {"name": "charge"}]})
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/queues/billing")
    page.get_by_role("button", name="Pause queue billing").click()
    expect(page.get_by_role("button", name="Resume queue billing")).to_be_visible()
    page.get_by_role("link", name="Audit").click()
    expect(page).to_have_url(re.compile("/ui/audit$"))
    row = page.get_by_role("row", name=re.compile("pause queue"))
    expect(row).to_contain_text("dashboard")
    expect(row).to_contain_text("billing")
    expect(row).to_contain_text("open")  # no token guards this appliance
    w.shot("audit")
    w.check()


def test_a_chart_has_axes_series_and_a_tooltip_for_each_point(serve, browser):
    server = serve()
    call(server.url, "POST", "/queues/jobs/bulk?queue=charted", {"jobs": [{"name": "x"} for _ in range(3)]})
    _, leased = call(server.url, "POST", "/queues/jobs/lease?queue=charted", {"max": 3})
    for job in leased["jobs"][:2]:
        call(server.url, "POST", f"/queues/jobs/{job['id']}/complete", {"leaseToken": job["leaseToken"]})
    call(server.url, "POST", f"/queues/jobs/{leased['jobs'][2]['id']}/fail",
         {"leaseToken": leased["jobs"][2]["leaseToken"], "retry": False, "error": "boom"})
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/queues/charted")
    chart = page.locator("svg.chart").first
    expect(chart.locator("text.tick").first).to_be_visible()  # an axis, with its labels
    tooltips = chart.locator("title")
    expect(tooltips.last).to_contain_text("3 enqueued, 2 completed, 1 failed")
    expect(page.locator("svg.chart.latency")).to_have_count(1)  # processing time, mean and p95
    expect(page.locator("figcaption").first).to_contain_text("3 enqueued")
    w.go("/ui/queues/charted")
    page.get_by_role("group", name="Chart window").get_by_role("button", name="7d").click()
    expect(page.get_by_role("group", name="Chart window").get_by_role("button", name="7d")).to_have_attribute(
        "aria-pressed", "true")
    w.shot("chart")
    w.check()


def test_the_overview_charts_every_queue_together(serve, browser):
    server = serve()
    for queue, count in (("left", 2), ("right", 3)):
        call(server.url, "POST", f"/queues/jobs/bulk?queue={queue}", {"jobs": [{"name": "x"}] * count})
    w = wide_page(browser, server.url)
    page = w.page
    w.go("/ui/")
    whole = page.get_by_role("region", name="Every queue")
    expect(whole.locator("figcaption")).to_contain_text("5 enqueued")  # 2 + 3
    expect(whole.locator("title").last).to_contain_text("5 enqueued")
    w.check()


def test_times_can_be_shown_on_the_browsers_own_clock(serve, browser):
    server = serve()
    _, job = call(server.url, "POST", "/queues/jobs", {"name": "x"})
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Kolkata")
    w = watch(context, server.url)
    page = w.page
    w.go(f"/ui/jobs/{job['id']}")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text(re.compile(r"created: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z"))  # UTC first
    page.get_by_role("button", name="Show times on this computer's clock").click()
    expect(timeline).to_contain_text(re.compile(r"created: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} GMT\+5:30"))
    w.go(f"/ui/jobs/{job['id']}")  # the choice is kept
    expect(page.get_by_role("button", name="Show times in UTC")).to_be_visible()
    w.check()


def test_the_job_page_follows_the_event_stream(serve, browser):
    server = serve()
    _, job = call(server.url, "POST", "/queues/jobs?queue=live", {"name": "x"})
    w = wide_page(browser, server.url)
    page = w.page
    w.go(f"/ui/jobs/{job['id']}")
    heading = page.get_by_role("heading", name=re.compile(f"Job {job['id']}"))
    expect(heading).to_contain_text("waiting")
    # a waiting job's page is redrawn by events alone (its fallback poll is 30 s): once
    # the page's stream is open, as the appliance counts it
    import time
    import urllib.request

    deadline = time.monotonic() + 10
    while b"queueapp_event_stream_clients 1" not in urllib.request.urlopen(server.url + "/metrics").read():
        assert time.monotonic() < deadline, "the page opened no event stream"
        time.sleep(0.05)  # another process's state: nothing to wait on but its answer
    _, leased = call(server.url, "POST", "/queues/jobs/lease?queue=live", {"max": 1})
    expect(heading).to_contain_text("active", timeout=10_000)
    call(server.url, "POST", f"/queues/jobs/{job['id']}/complete", {"leaseToken": leased["jobs"][0]["leaseToken"]})
    expect(heading).to_contain_text("completed", timeout=10_000)
    w.go("/ui/queues/live/workers")
    expect(page.get_by_text("No job is running.")).to_be_visible()
    w.check()


def test_keys_are_made_and_revoked_in_the_dashboard_and_a_key_sees_only_what_it_may(serve, browser):
    server = serve("--token", ADMIN)
    _failed_emails(server.url, ADMIN)

    w = logged_in(browser, server.url, ADMIN)
    page = w.page
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    form = page.get_by_role("form", name="New API key")
    form.get_by_label("Name").fill("email-watch")
    form.get_by_label(re.compile("^Queues")).fill("emails")
    form.get_by_role("checkbox", name="read: read everything").check()
    form.get_by_label("Note").fill("the on-call screen")
    form.get_by_role("button", name="Make key").click()
    secret_box = page.locator(".secret-text")
    expect(secret_box).to_have_text(re.compile(r"^qak_[A-Za-z0-9]{12}_[A-Za-z0-9]{32}$"))
    secret = secret_box.inner_text()
    row = page.get_by_role("row", name="Key email-watch")
    expect(row).to_contain_text("emails")
    expect(row).to_contain_text("active")
    w.shot("keys")
    page.get_by_role("button", name="I have copied it").click()
    expect(secret_box).to_have_count(0)
    w.check()

    k = logged_in(browser, server.url, secret)
    expect(k.page.locator("#role")).to_have_text("key email-watch · read-only · emails")
    expect(k.page.get_by_role("region", name="Queue emails")).to_be_visible()
    expect(k.page.get_by_role("region", name="Queue reports")).to_have_count(0)  # not its queue
    expect(k.page.get_by_role("button", name="Pause queue emails")).to_be_disabled()
    expect(k.page.get_by_role("link", name="Keys")).to_have_count(0)
    expect(k.page.get_by_role("link", name="Audit")).to_have_count(0)
    k.go("/ui/queues/emails?state=failed")
    expect(k.page.get_by_role("button", name=re.compile(r"^Retry job"))).to_have_count(2)
    for button in k.page.get_by_role("button", name=re.compile(r"^Retry job")).all():
        expect(button).to_be_disabled()
    k.expect_console_error("status of 403")
    status = k.page.evaluate("fetch('/queues/metrics?queue=reports').then(r => r.status)")
    assert status == 403
    k.check()

    page.on("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke key email-watch").click()
    page.locator("#confirm-ok").click()
    expect(row).to_contain_text("revoked")
    k.expect_console_error("status of 401")
    k.go("/ui/")
    expect(k.page).to_have_url(re.compile(r"/ui/login$"))  # its session ended with the key
