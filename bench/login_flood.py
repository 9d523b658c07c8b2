#!/usr/bin/env python3
"""A password-login flood through the real pages: each worker starts an authorization
request, loads the login page and posts the right password (argon2id verification on the
server), over and over for DURATION seconds. Prints one JSON line with logins/s.

usage: login_flood.py ISSUER CLIENT_ID REDIRECT USERNAME PASSWORD WORKERS DURATION

USERNAME may contain `{n}`: worker n then signs in as that account (`flood{n}`: flood0,
flood1, ...). Portcullis runs one sign-in per account at a time and answers 429 to more
than 8 waiting on it (a defense against parallel guessing), so a flood of one account
measures that queue, not the server's logins/s.
"""
import html
import json
import re
import sys
import threading
import time
import urllib.parse

import requests


def main():
    issuer, client_id, redirect, username, password, workers, duration = sys.argv[1:8]
    workers, duration = int(workers), float(duration)
    auth = f"{issuer}/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    ok, failed = [0], [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker(n):
        account = username.replace("{n}", str(n))
        while time.monotonic() < deadline:
            s = requests.Session()
            try:
                r = s.get(auth, allow_redirects=False)
                page_url = urllib.parse.urljoin(issuer, r.headers["location"])
                page = s.get(page_url).text
                fields = {m.group(1): html.unescape(m.group(2))
                          for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
                fields.update({"username": account, "password": password})
                r = s.post(f"{issuer}/login", data=fields, allow_redirects=False)
                good = r.status_code == 303 and "code=" in r.headers.get("location", "")
            except (requests.RequestException, KeyError):
                good = False
            with lock:
                (ok if good else failed)[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    print("JSON " + json.dumps({"logins": ok[0], "failed": failed[0], "duration_s": round(elapsed, 3),
                                "logins_per_s": round(ok[0] / elapsed, 1)}))


if __name__ == "__main__":
    main()
