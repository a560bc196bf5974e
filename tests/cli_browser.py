"""A scripted browser for the ``vzcloud login`` tests.

``sign_in(url, username, password, decision)`` does what a person does with the URL
``vzcloud login`` shows: open the real sign-in page (keeping its CSRF cookie), submit the
form, and follow the redirect to the command's loopback listener; it returns the
listener's response. Run as a program (``$BROWSER``, which ``webbrowser`` calls with the
URL as its one argument), it signs in as ``$TEST_BROWSER_USER`` / ``$TEST_BROWSER_PASSWORD``.
"""

from __future__ import annotations

import html
import os
import re
import sys

import httpx


def sign_in(url: str, username: str, password: str, decision: str = "allow") -> httpx.Response:
    with httpx.Client(timeout=30) as browser:
        page = browser.get(url)
        assert page.status_code == 200, page.text
        form = {k: html.unescape(v) for k, v in
                re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text)}
        form.update(username=username, password=password, decision=decision)
        answer = browser.post(url.split("?")[0], data=form)
        assert answer.status_code == 302, answer.text
        return browser.get(answer.headers["location"])


def main() -> None:
    response = sign_in(sys.argv[1], os.environ["TEST_BROWSER_USER"],
                       os.environ["TEST_BROWSER_PASSWORD"])
    sys.exit(0 if response.status_code == 200 else 1)


if __name__ == "__main__":
    main()
