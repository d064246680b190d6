"""`mailbot sim netsuite` as a process: base URL first, signed requests served, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests
from requests_oauthlib import OAuth1

from mailbot.sim.netsuite import load_data


def test_the_emulator_command_serves_signed_requests_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "sim", "netsuite", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        credentials = load_data(None)["credentials"]
        auth = OAuth1(
            credentials["consumer_key"],
            client_secret=credentials["consumer_secret"],
            resource_owner_key=credentials["token_id"],
            resource_owner_secret=credentials["token_secret"],
            signature_method="HMAC-SHA256",
            realm=credentials["account"],
        )
        answer = requests.post(
            f"{base_url}/services/rest/query/v1/suiteql",
            params={"limit": 5},
            json={"q": "SELECT id, email FROM employee"},
            headers={"Prefer": "transient"},
            auth=auth,
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json()["count"] == 5
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    log = process.stderr.read()
    assert "POST /services/rest/query/v1/suiteql" in log
    assert credentials["consumer_secret"] not in log and "oauth_signature" not in log
