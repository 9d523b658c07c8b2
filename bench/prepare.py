#!/usr/bin/env python3
"""Prepares inputs for the load tests through the real login page and authorization
endpoint: N authorization codes (with their PKCE verifiers) and M refresh tokens.

usage: prepare.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT USERNAME PASSWORD CODES_OUT N REFRESH_OUT M
The client must be first-party (no consent page) and allowed authorization_code and
refresh_token.
"""
import base64
import concurrent.futures
import hashlib
import html
import re
import secrets
import sys
import urllib.parse

import requests


def pkce():
    verifier = secrets.token_urlsafe(48)[:64]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(issuer, client_id, redirect, challenge):
    q = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect,
        "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return f"{issuer}/authorize?{q}"


def code_from(location):
    return urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]


def login(issuer, client_id, redirect, username, password):
    s = requests.Session()
    verifier, challenge = pkce()
    r = s.get(authorize_url(issuer, client_id, redirect, challenge), allow_redirects=False)
    if "location" not in r.headers:
        sys.exit(f"authorize answered {r.status_code} without a redirect: {r.text[:500]}")
    login_url = urllib.parse.urljoin(issuer, r.headers["location"])
    page = s.get(login_url).text
    form = re.search(r'<form[^>]*method="post"[^>]*action="([^"]*)"', page)
    action = urllib.parse.urljoin(login_url, html.unescape(form.group(1))) if form else login_url
    fields = {m.group(1): html.unescape(m.group(2)) for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}
    fields.update({"username": username, "password": password})
    r = s.post(action, data=fields, allow_redirects=False)
    return s, code_from(r.headers["location"]), verifier


def main():
    issuer, client_id, secret, redirect, username, password, codes_out, n, refresh_out, m = sys.argv[1:11]
    n, m = int(n), int(m)
    session, first_code, first_verifier = login(issuer, client_id, redirect, username, password)

    def one_code(_):
        verifier, challenge = pkce()
        r = session.get(authorize_url(issuer, client_id, redirect, challenge), allow_redirects=False)
        return code_from(r.headers["location"]), verifier

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one_code, range(n + m)))
    codes.append((first_code, first_verifier))
    for_refresh, for_exchange = codes[:m], codes[m:]

    def exchange(pair):
        code, verifier = pair
        r = requests.post(f"{issuer}/token", auth=(client_id, secret), data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier, "redirect_uri": redirect})
        r.raise_for_status()
        return r.json()["refresh_token"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        refresh = list(pool.map(exchange, for_refresh))
    with open(codes_out, "w") as f:
        f.writelines(f"{c} {v}\n" for c, v in for_exchange)
    with open(refresh_out, "w") as f:
        f.writelines(f"{t}\n" for t in refresh)


if __name__ == "__main__":
    main()
