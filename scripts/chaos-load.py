#!/usr/bin/env python3
"""Capture load for scripts/chaos.sh: THREADS clients post valid certificates to
POST /api/v1/certificates until the file STOP exists. Every certificate has its own
Idempotency-Key; a request that fails (connection refused or reset, timeout, 5xx) is retried
with the same key, as practice software would, until it is acknowledged or the run ends.

Writes one line per acknowledged certificate to OUT: "<status> <uuid> <key>" (201 = created,
200 = the server already had it under that key, i.e. an earlier attempt committed but its
answer was lost). Prints a JSON summary on stdout at the end.

    chaos-load.py BASE_URL TOKEN THREADS OUT STOP
"""
import datetime
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from zoneinfo import ZoneInfo

base, token, threads, out_path, stop_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
url = urllib.parse.urlsplit(base)
today = datetime.datetime.now(ZoneInfo("Europe/Berlin")).date()


def body(n, key):
    return json.dumps({
        "kind": "ERST",
        "patient": {"kvnr": "A123456780", "first_name": "Jürgen", "last_name": f"Müller-Lüdenscheidt {n}",
                    "birth_date": "1980-04-01", "street": "Straße", "house_number": "5",
                    "postal_code": "30159", "city": "Hannover"},
        "insurer": {"ik": "109500969", "name": "AOK Niedersachsen", "insured_type": "1"},
        "period": {"since": str(today - datetime.timedelta(days=1)), "until": str(today + datetime.timedelta(days=3)),
                   "determined_on": str(today)},
        "diagnoses": [{"code": "J06.9", "certainty": "G"}],
        # The patient's copy by mail, to an address scripts/chaos.sh can map back to this request.
        "mail": {"address": f"{key}@example.de", "consent": True},
    }).encode()


lock = threading.Lock()
stats = {"201": 0, "200": 0, "retries": 0, "connection_errors": 0, "http_5xx": 0, "other": 0,
         "unacknowledged": 0}
out = open(out_path, "a", buffering=1)


def bump(key, n=1):
    with lock:
        stats[key] += n


def client(i):
    conn = None
    n = 0
    while not os.path.exists(stop_path):
        n += 1
        key = str(uuid.uuid4())
        data = body(f"{i}-{n}", key)
        acknowledged = False
        attempt = 0
        while not acknowledged:
            if attempt > 0:
                if os.path.exists(stop_path):
                    bump("unacknowledged")
                    break
                bump("retries")
                time.sleep(0.2)
            attempt += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
                conn.request("POST", "/api/v1/certificates", body=data, headers={
                    "Content-Type": "application/json", "Authorization": f"Bearer {token}",
                    "Idempotency-Key": key})
                r = conn.getresponse()
                payload = r.read()
            except (OSError, http.client.HTTPException):
                bump("connection_errors")
                if conn is not None:
                    conn.close()
                conn = None
                continue
            if r.status in (200, 201):
                doc = json.loads(payload)["id"]
                with lock:
                    stats[str(r.status)] += 1
                    out.write(f"{r.status} {doc} {key}\n")
                acknowledged = True
            elif r.status >= 500:
                bump("http_5xx")
            else:
                bump("other")
                sys.stderr.write(f"unexpected {r.status}: {payload[:300]!r}\n")
                break


workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
print(json.dumps(stats))
