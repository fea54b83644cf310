#!/usr/bin/env python3
"""An example backend for Switchboard: chat with an agent, end to end, standard library only.

The server POSTs each client `user_message` frame to this backend (`[webhook] url`), signed.
The backend verifies the signature, answers at once with a reply (which reaches the sending
connection as a `reply` frame with the frame's `ref`), and streams an agent run back through
the server's runs API (`POST /api/runs/{user}/{run}/events`): agent_started, agent_thinking,
tool_executing, tool_completed, agent_completed. Lifecycle events are acknowledged.

    PORT=9000 SWITCHBOARD_URL=http://127.0.0.1:8080 SWITCHBOARD_API_KEY=... \
    WEBHOOK_SECRET=... python3 examples/backend.py

and run the server with:

    [frames]
    types = ["user_message"]
    [webhook]
    url = "http://127.0.0.1:9000/hook"
    secret = "..."          # the same as WEBHOOK_SECRET
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SWITCHBOARD_URL = os.environ.get("SWITCHBOARD_URL", "http://127.0.0.1:8080")
API_KEY = os.environ.get("SWITCHBOARD_API_KEY", "")
SECRET = os.environ.get("WEBHOOK_SECRET", "")
PORT = int(os.environ.get("PORT", "9000"))
REPLAY_WINDOW_SECS = 300

_seen = set()
_seen_lock = threading.Lock()


def verified(headers, body):
    """The documented recipe: HMAC-SHA256 of `timestamp + "." + body`, hex, among the `v1=`
    values of X-Switchboard-Signature, with a timestamp within the replay window."""
    timestamp = headers.get("X-Switchboard-Timestamp", "")
    signatures = headers.get("X-Switchboard-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_SECS:
        return False
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return any(
        hmac.compare_digest(part.strip()[3:], expected)
        for part in signatures.split(",")
        if part.strip().startswith("v1=")
    )


def first_delivery(event_id):
    """At-least-once delivery: a retry carries the same id; act on it once."""
    with _seen_lock:
        if event_id in _seen:
            return False
        _seen.add(event_id)
        return True


def run_event(user, run, event):
    request = urllib.request.Request(
        f"{SWITCHBOARD_URL}/api/runs/{user}/{run}/events",
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def stream_run(event):
    """The agent's run on the user's question, streamed through the runs API."""
    user, text = event["user"], event["data"].get("text", "")
    run = "run-" + event["id"]
    started = {"event": "agent_started", "agent": "helper", "data": {"question": text}}
    if event.get("thread"):
        started["thread"] = event["thread"]
    steps = [
        started,
        {"event": "agent_thinking", "thought": f"looking up {text!r}"},
        {"event": "tool_executing", "tool": "search", "input": {"q": text}},
        {"event": "tool_completed", "tool": "search", "output": ["a result"]},
        {"event": "agent_completed", "result": f"the answer to {text!r}"},
    ]
    try:
        for step in steps:
            run_event(user, run, step)
    except OSError as error:
        print(f"run {run} failed: {error}", file=sys.stderr, flush=True)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if SECRET and not verified(self.headers, body):
            return self.answer(401, {"error": {"code": "bad_signature", "message": "not signed"}})
        event = json.loads(body)
        if event["event"] != "frame":
            return self.answer(204, None)
        if event["type"] != "user_message":
            return self.answer(400, {"error": {"code": "unsupported", "message": event["type"]}})
        if first_delivery(event["id"]):
            threading.Thread(target=stream_run, args=(event,), daemon=True).start()
        self.answer(200, {"reply": {"text": "on it", "run": "run-" + event["id"]}})

    def answer(self, status, payload):
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Hook)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
