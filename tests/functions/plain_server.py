"""A function backend that is not the project's runtime, for the supervisor tests: it listens on
--port, and answers every POST with a reply describing how it was started."""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(),
                "env": {k: os.environ.get(k) for k in (
                    "PORT", "FNGATE_FUNCTION_NAME", "FNGATE_FUNCTION_TIMEOUT_MS",
                    "FNGATE_FUNCTION_MEMORY_MB", "FNGATE_INSTANCE", "GREETING")}}
        body = json.dumps({"statusCode": 200, "body": json.dumps(seen)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
args = p.parse_args()
print("plain server on port", args.port, flush=True)
HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
