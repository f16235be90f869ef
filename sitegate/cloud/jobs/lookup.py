"""The customer lookup hook: the operator's accounting system names the customer's
accounting id. A command (no shell; the party as JSON on stdin; the id on stdout) or a URL
(the party as JSON by POST; ``{"accounting_id": "..."}`` back). Bounded: a timeout, at most
4 KiB of answer, an id of at most 64 printable characters; a failure is one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from typing import Any

from sitegate.cloud.jobs.model import Lookup

MAX_ANSWER = 4096
ACCOUNTING_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$")


class LookupError_(RuntimeError):
    pass


def lookup(hook: Lookup, party: dict[str, Any]) -> str:
    body = json.dumps(party, ensure_ascii=False).encode()
    if hook.command:
        try:
            r = subprocess.run(hook.command, input=body, capture_output=True,
                               timeout=hook.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LookupError_(f"customer lookup {hook.command[0]}: {exc}") from None
        if r.returncode != 0:
            raise LookupError_(f"customer lookup {hook.command[0]} exited {r.returncode}: "
                               f"{r.stderr[:200].decode('utf-8', 'replace').strip()}")
        answer = r.stdout[:MAX_ANSWER].decode("utf-8", "replace").strip()
    else:
        assert hook.url is not None
        req = urllib.request.Request(hook.url, data=body, method="POST",
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=hook.timeout) as resp:
                raw = resp.read(MAX_ANSWER + 1)
        except (OSError, urllib.error.URLError) as exc:
            raise LookupError_(f"customer lookup {hook.url}: {exc}") from None
        try:
            answer = str(json.loads(raw[:MAX_ANSWER])["accounting_id"]).strip()
        except (ValueError, KeyError, TypeError):
            raise LookupError_(f"customer lookup {hook.url}: expected JSON "
                               '{"accounting_id": "..."}') from None
    if not ACCOUNTING_ID.match(answer):
        raise LookupError_(f"customer lookup gave no usable accounting id: {answer[:80]!r}")
    return answer
