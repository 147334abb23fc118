"""JD compatibility: a WSGI application served through the gateway by an adapter that rebuilds
the WSGI environ from the API-gateway event's `detail`, the way existing JD Cloud Python code does.
The application is wrapped in wsgiref's validator, so an environ or a response that breaks
PEP 3333 fails the test."""
import io
import json
import sys
from urllib.parse import quote, unquote_to_bytes, urlencode
from wsgiref.validate import validator


def app(environ, start_response):
    """The user's WSGI application: echoes what it was given."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {
        "method": environ["REQUEST_METHOD"],
        "script_name": environ["SCRIPT_NAME"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "content_type": environ.get("CONTENT_TYPE", ""),
        "custom": environ.get("HTTP_X_CUSTOM"),
        "host": environ.get("HTTP_HOST"),
        "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]],
        "scheme": environ["wsgi.url_scheme"],
        "body": environ["wsgi.input"].read(length).decode("utf-8"),
    }
    status = "201 Created" if seen["method"] == "POST" else "200 OK"
    start_response(status, [("Content-Type", "application/json"), ("X-App", "wsgi"),
                            ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [json.dumps(seen).encode("utf-8")]


def environ_from(request):
    headers = request.get("headers") or {}
    body = (request.get("body") or "").encode("utf-8")
    query = request.get("queryString")
    if query is None:  # older events carry only the decoded parameters
        query = urlencode(request.get("queryParameters") or {}, doseq=True, quote_via=quote)
    host = headers.get("host", "localhost")
    name, _, port = host.partition(":")
    environ = {
        "REQUEST_METHOD": request.get("httpMethod", "GET"),
        "SCRIPT_NAME": "",
        # PEP 3333: PATH_INFO is the decoded path, as bytes in latin-1.
        "PATH_INFO": unquote_to_bytes(request.get("path", "/")).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": name,
        "SERVER_PORT": port or "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": (request.get("requestContext") or {}).get("sourceIp", ""),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": headers.get("x-forwarded-proto", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if "content-type" in headers:
        environ["CONTENT_TYPE"] = headers["content-type"]
    for name, value in headers.items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            environ[key] = value
    return environ


def handler(event, context):
    """The adapter: event in, WSGI call, JD reply out."""
    request = event.get("detail", event)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split(" ", 1)[0])
        answer["headers"] = headers
        return lambda data: None

    chunks = validator(app)(environ_from(request), start_response)
    try:
        body = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    headers = {}
    for name, value in answer["headers"]:
        headers.setdefault(name, []).append(value)
    return {"statusCode": answer["status"],
            "headers": {k: v[0] if len(v) == 1 else v for k, v in headers.items()},
            "body": body.decode("utf-8")}
