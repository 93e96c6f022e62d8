# Tests of the web pages (issue 6): assets served from memory, the fan page
# and the ops dashboard in headless Chromium (playwright-core in tests/web,
# installed by scripts/setup).
onsale_pytest(it_web test_web.py)
onsale_pytest(it_web_accounts test_web_accounts.py)
onsale_pytest(it_web_tickets test_web_tickets.py)
onsale_pytest(it_web_pow test_web_pow.py)
onsale_pytest(it_web_view test_web_view.py)
onsale_pytest(it_web_cancel test_web_cancel.py)
onsale_pytest(it_web_crowd test_web_crowd.py)
onsale_pytest(it_web_faults test_web_faults.py)
