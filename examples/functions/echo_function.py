#!/usr/bin/env python3
"""A minimal function backend speaking fngate's invoke protocol (SPEC §3), standard library only.

It answers every event with a valid reply that greets `pathParameters.name` (or "world") and
echoes what it received, so the gateway can be tried without any other runtime:

    python3 examples/functions/echo_function.py --port 9000
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the gateway can pool connections

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        event = json.loads(self.rfile.read(length) or b"{}")
        request = event.get("detail", event)  # jdcloud envelope or jdcloud-detail
        name = (request.get("pathParameters") or {}).get("name", "world")
        reply = {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({
                "greeting": f"hello, {name}",
                "method": request.get("httpMethod"),
                "query": request.get("queryParameters"),
                "body": request.get("body"),
                "requestId": request.get("requestContext", {}).get("requestId"),
            }, ensure_ascii=False),
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
