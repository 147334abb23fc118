#!/usr/bin/env python3
"""fngate's Python function runtime: serves one `handler(event, context)` over the invoke protocol.

    python3 fngate_runtime.py --code DIR --handler index.handler [--listen HOST:PORT] [--workers N]

The gateway POSTs each event as JSON (headers x-jdcloud-request-id, x-fngate-function,
x-fngate-deadline-ms); the runtime answers 200 with the handler's return value JSON-encoded, or
500 with {"errorType", "errorMessage", "stackTrace"} when the handler raised. The handler module
is imported once, before the port is opened, so "listening" means "ready". Standard library only,
Python >= 3.8. See docs/runtime.md.
"""

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_TIMEOUT_MS = 30000
DEFAULT_WORKERS = 16

_local = threading.local()
_write_lock = threading.Lock()


def current_request_id():
    return getattr(_local, "request_id", "-")


class TaggedStream:
    """Stands in for sys.stdout / sys.stderr: every line is written as `[function request_id] line`
    so that the gateway's log says which invocation printed it. Partial lines are kept per thread,
    so concurrent invocations never interleave within a line."""

    def __init__(self, raw, function):
        self._raw = raw
        self._function = function
        self._pending = threading.local()

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        pending = getattr(self._pending, "text", "") + text
        *lines, rest = pending.split("\n")
        self._pending.text = rest
        if lines:
            self._emit(lines)
        return len(text)

    def flush(self):
        rest = getattr(self._pending, "text", "")
        if rest:
            self._pending.text = ""
            self._emit([rest])

    def _emit(self, lines):
        tag = "[{} {}] ".format(self._function, current_request_id())
        out = "".join(tag + line + "\n" for line in lines)
        with _write_lock:
            self._raw.write(out)
            self._raw.flush()

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def isatty(self):
        return False

    def __getattr__(self, name):  # encoding, errors, fileno, ... of the real stream
        return getattr(self._raw, name)


def log(message):
    """The runtime's own messages, untagged, on the real stderr."""
    with _write_lock:
        sys.__stderr__.write("fngate-runtime: {}\n".format(message))
        sys.__stderr__.flush()


def fail(message):
    """Start-up failure: one clear line, exit status 1."""
    log(message)
    sys.exit(1)


class Context:
    """What JD Cloud / Lambda-style handlers read from their second argument."""

    def __init__(self, request_id, function_name, memory_mb, timeout_s, deadline):
        self.request_id = request_id
        self.aws_request_id = request_id
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.timeout = timeout_s
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def __repr__(self):
        return "Context(request_id={!r}, function_name={!r})".format(
            self.request_id, self.function_name)


def load_handler(code_dir, spec):
    """Imports `module.function` from code_dir, or exits with a clear message."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        fail("--handler {!r} must look like module.function (e.g. index.handler)".format(spec))
    if not os.path.isdir(code_dir):
        fail("--code {!r} is not a directory".format(code_dir))
    sys.path.insert(0, code_dir)
    # Like Lambda's task root: the handler's relative paths are relative to its code.
    os.chdir(code_dir)
    try:
        module = importlib.import_module(module_name)
    except BaseException as e:  # a handler module may even call sys.exit() at import
        traceback.print_exc()
        fail("cannot load handler {} from {}: {}: {}".format(
            spec, code_dir, type(e).__name__, e))
    handler = getattr(module, function_name, None)
    if not callable(handler):
        fail("cannot load handler {} from {}: module {!r} has no function {!r}".format(
            spec, code_dir, module_name, function_name))
    return handler


def error_body(exc_type, message, stack):
    return {"errorType": exc_type, "errorMessage": message, "stackTrace": stack}


class Invoker:
    """Calls the handler for one event, at most `workers` at a time."""

    def __init__(self, handler, function_name, memory_mb, timeout_ms, workers, raw_event=False):
        self.handler = handler
        self.raw_event = raw_event
        self.function_name = function_name
        self.memory_mb = memory_mb
        self.timeout_ms = timeout_ms
        self.slots = threading.BoundedSemaphore(workers)

    def invoke(self, body, request_id, deadline):
        """Returns (status, JSON-serialisable payload)."""
        try:
            event = json.loads(body)
        except ValueError as e:
            return 400, error_body("InvalidEvent", "the event is not JSON: {}".format(e), [])
        if self.raw_event:
            # Alibaba Cloud Function Compute hands Python handlers the event's JSON as bytes.
            event = body
        if not self.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return 503, error_body("Busy", "every worker stayed busy until the deadline", [])
        _local.request_id = request_id
        try:
            give_thread_an_event_loop()
            context = Context(request_id, self.function_name, self.memory_mb,
                              seconds(self.timeout_ms), deadline)
            result = self.handler(event, context)
            return 200, result
        except BaseException as e:  # SystemExit too: one invocation must not stop the runtime
            stack = traceback.format_exception(type(e), e, e.__traceback__)
            sys.stderr.write("".join(stack))
            return 500, error_body(type(e).__name__, str(e),
                                   [line.rstrip("\n") for line in stack])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _local.request_id = "-"
            self.slots.release()


def give_thread_an_event_loop():
    """Lambda calls handlers on its main thread, where asyncio finds an event loop; adapters such
    as Mangum (ASGI) count on one. Handlers run on worker threads here, so a thread gets a loop
    of its own the first time it needs one — only when the handler's code uses asyncio at all."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None or getattr(_local, "has_loop", False):
        return
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    _local.has_loop = True


def seconds(ms):
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def encode(status, payload):
    """JSON bytes of the reply; a value JSON cannot hold becomes a marshal error."""
    try:
        return status, json.dumps(payload, allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as e:
        body = error_body("Runtime.MarshalError",
                          "the handler's return value cannot be encoded as JSON: {}".format(e), [])
        return 500, json.dumps(body).encode()


class InvokeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the gateway pools its connections
    server_version = "fngate-runtime"
    disable_nagle_algorithm = True
    invoker = None  # set by serve()

    def do_POST(self):
        with self.server.tracker:
            if self.server.stopping.is_set():
                self.close_connection = True
                self.answer(503, error_body("Stopping", "the runtime is stopping", []),
                            [("Connection", "close")])
                return
            self.invoke_once()

    def invoke_once(self):
        received = time.monotonic()
        length = self.headers.get("content-length")
        if length is None or not length.strip().isdigit():
            self.answer(411, error_body("LengthRequired", "send the event with Content-Length", []))
            return
        body = self.rfile.read(int(length))
        request_id = self.headers.get("x-jdcloud-request-id") or str(uuid.uuid4())
        budget = self.headers.get("x-fngate-deadline-ms", "")
        budget_ms = int(budget) if budget.strip().isdigit() else self.invoker.timeout_ms
        status, payload = self.invoker.invoke(body, request_id, received + budget_ms / 1000)
        self.answer(*encode(status, payload))

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/healthz":
            self.answer(200, {"status": "ok", "function": self.invoker.function_name})
        else:
            self.answer(405, error_body("MethodNotAllowed", "POST the event", []),
                        [("Allow", "POST")])

    def answer(self, status, payload, extra_headers=()):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # the gateway writes the access log
        pass


class InFlight:
    """Counts requests being served, so that a stop can wait for them (`with tracker:`)."""

    def __init__(self):
        self.count = 0
        self.changed = threading.Condition()

    def __enter__(self):
        with self.changed:
            self.count += 1

    def __exit__(self, *exc):
        with self.changed:
            self.count -= 1
            self.changed.notify_all()

    def wait_idle(self, timeout):
        with self.changed:
            return self.changed.wait_for(lambda: self.count == 0, timeout)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of new pooled connections from the gateway

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tracker = InFlight()
        self.stopping = threading.Event()

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            # The gateway stopped waiting (its deadline passed) or went away: not a crash.
            log("the gateway closed a connection before the reply was written ({})".format(
                type(error).__name__))
        else:
            super().handle_error(request, client_address)


def parse_listen(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        fail("--listen {!r} must be HOST:PORT".format(text))
    return host.strip("[]") or "127.0.0.1", int(port)


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def main(argv=None):
    p = argparse.ArgumentParser(description="Serve one handler(event, context) for fngate.")
    p.add_argument("--code", required=True, help="directory holding the handler's module")
    p.add_argument("--handler", required=True, help="module.function, e.g. index.handler")
    p.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:$PORT, else 127.0.0.1:9000)")
    p.add_argument("--workers", type=int, default=env_int("FNGATE_WORKERS", DEFAULT_WORKERS),
                   help="invocations served in parallel (default $FNGATE_WORKERS or %(default)s)")
    p.add_argument("--function-name", default=os.environ.get("FNGATE_FUNCTION_NAME"),
                   help="context.function_name (default $FNGATE_FUNCTION_NAME)")
    p.add_argument("--raw-event", action="store_true",
                   help="pass the event as the bytes of its JSON (Alibaba Cloud FC's Python "
                        "handlers json.loads it themselves)")
    args = p.parse_args(argv)
    if args.workers < 1:
        fail("--workers must be at least 1")
    listen = args.listen or "127.0.0.1:{}".format(os.environ.get("PORT") or 9000)
    host, port = parse_listen(listen)
    code_dir = os.path.abspath(args.code)
    name = args.function_name or os.path.basename(code_dir)

    sys.stdout = TaggedStream(sys.__stdout__, name)
    sys.stderr = TaggedStream(sys.__stderr__, name)
    handler = load_handler(code_dir, args.handler)
    InvokeHandler.invoker = Invoker(
        handler, name,
        memory_mb=env_int("FNGATE_FUNCTION_MEMORY_MB", 128),
        timeout_ms=env_int("FNGATE_FUNCTION_TIMEOUT_MS", DEFAULT_TIMEOUT_MS),
        workers=args.workers, raw_event=args.raw_event)
    try:
        server = Server((host, port), InvokeHandler)
    except OSError as e:
        fail("cannot listen on {}: {}".format(listen, e))
    log("serving {} from {} on {}:{} with {} workers".format(
        args.handler, code_dir, host, server.server_address[1], args.workers))
    stop_on_sigterm(server)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    # Stopped by SIGTERM: invocations already running get to answer (within the function's
    # timeout); later requests on open connections were told 503 Stopping.
    if not server.tracker.wait_idle(InvokeHandler.invoker.timeout_ms / 1000):
        log("stopping with invocations still running after the function's timeout")
    server.server_close()
    log("stopped")


def stop_on_sigterm(server):
    """SIGTERM (the gateway stopping its functions, `docker stop`) stops accepting and lets
    `main` wait for running invocations. Without a handler a container's PID 1 would ignore
    it until the SIGKILL."""
    def on_term(signum, frame):
        server.stopping.set()
        # shutdown() waits for serve_forever, which runs in this (the main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, on_term)


if __name__ == "__main__":
    main()
