"""A local OpenAI-compatible chat-completions server on 127.0.0.1 for the HTTP judge's tests (never the internet).

`ChatServer(script)`: `script` is a list of replies served in order (the last one repeats), each a dict with
status (200), body (dict -> JSON, or bytes), headers ({}), delay (seconds before answering); or `script` is a
function(request_json) -> reply dict. Every request is recorded (`requests`: its JSON and headers).
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(content, logprobs=None) -> dict:
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": content, "logprob": 0.0, "top_logprobs": logprobs}]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


def prefer_longer(request: dict) -> dict:
    """Answers like a judge that prefers the longer response (reads the two responses from the prompt)."""
    text = request["messages"][-1]["content"]
    a = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", text, re.S).group(1)
    b = re.search(r"\[Response B\]\n(.*?)\n\nWhich response", text, re.S).group(1)
    return {"body": completion("A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"), "delay": 0.02}


class ChatServer:
    def __init__(self, script):
        self.script = script
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    request = json.loads(body)
                except ValueError:
                    request = None
                with server._lock:
                    n = len(server.requests)
                    server.requests.append({"path": self.path, "json": request, "headers": dict(self.headers)})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if callable(server.script):
                        reply = server.script(request)
                    else:
                        reply = server.script[min(n, len(server.script) - 1)]
                    time.sleep(reply.get("delay", 0))
                    data = reply.get("body", b"")
                    if not isinstance(data, bytes):
                        data = json.dumps(data).encode()
                    try:
                        self.send_response(reply.get("status", 200))
                        for k, v in reply.get("headers", {}).items():
                            self.send_header(k, v)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                        pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    def __enter__(self) -> "ChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
