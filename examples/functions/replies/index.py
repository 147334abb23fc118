"""replies: returns each kind of reply, to try the gateway's reply contract by hand.

GET /replies/{kind}; the kinds are listed by GET /replies/list. Only "ok", "redirect",
"base64" and "list" keep the contract; the rest show what the gateway answers instead.
"""
import time

REPLIES = {
    "ok": lambda: {"statusCode": 200, "headers": {"Content-Type": "text/plain"},
                   "body": "a reply that keeps the contract\n"},
    "redirect": lambda: {"statusCode": 302, "headers": {"Location": "/replies/ok"}},
    "base64": lambda: {"statusCode": 200, "headers": {"Content-Type": "text/plain"},
                       "body": "ZGVjb2RlZCBieSB0aGUgZ2F0ZXdheQo=", "isBase64Encoded": True},
    # The seed's downloadOSS returns a bare string: fine for an OSS trigger, 503 behind an API.
    "string": lambda: "download file successfully",
    "number": lambda: 42,
    "null": lambda: None,
    "array": lambda: [{"statusCode": 200}],
    "status-as-string": lambda: {"statusCode": "200", "body": "x"},
    "status-out-of-range": lambda: {"statusCode": 700, "body": "x"},
    "no-status": lambda: {"body": "x"},
    "body-not-string": lambda: {"statusCode": 200, "body": {"a": 1}},
    "header-injection": lambda: {"statusCode": 200, "headers": {"X-A": "1\r\nSet-Cookie: x=1"}},
    "bad-base64": lambda: {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
}


def raise_error():
    raise ValueError("the function raised on purpose")


def sleep_past_deadline(context):
    time.sleep(context.get_remaining_time_in_millis() / 1000 + 1)
    return {"statusCode": 200, "body": "too late"}


def handler(event, context):
    request = event.get("detail", event)
    kind = (request.get("pathParameters") or {}).get("kind", "list")
    if kind == "raise":
        raise_error()
    if kind == "slow":
        return sleep_past_deadline(context)
    if kind in REPLIES:
        return REPLIES[kind]()
    kinds = sorted(REPLIES) + ["raise", "slow"]
    return {"statusCode": 200 if kind == "list" else 404,
            "headers": {"Content-Type": "text/plain"},
            "body": "kinds: " + " ".join(kinds) + "\n"}
