"""A handler for the runtime and supervisor tests. The kind of answer comes from the route's
{kind} path parameter (through the gateway) or from event["kind"] (posted directly)."""
import json
import os
import sys
import time


def reply(value, status=200):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(value)}


def handler(event, context):
    request = event.get("detail", event) if isinstance(event, dict) else {}
    kind = (request.get("pathParameters") or {}).get("kind") or request.get("kind")
    query = request.get("queryParameters") or {}
    if kind == "value":  # direct only: return exactly what was posted
        return request["value"]
    if kind == "set":
        return {1, 2}
    if kind == "nan":
        return float("nan")
    if kind == "raise":
        raise KeyError("no such thing")
    if kind == "exit":
        sys.exit(3)
    if kind == "print":
        print("to stdout", query.get("tag", ""))
        print("to stderr", query.get("tag", ""), file=sys.stderr)
        return reply("printed")
    if kind == "context":
        first = context.get_remaining_time_in_millis()
        time.sleep(0.2)
        second = context.get_remaining_time_in_millis()
        return reply({"request_id": context.request_id, "function_name": context.function_name,
                      "memory_limit_in_mb": context.memory_limit_in_mb,
                      "timeout": context.timeout, "remaining": [first, second]})
    if kind == "sleep":
        time.sleep(float(query.get("seconds", "1")))
        return reply({"pid": os.getpid()})
    if kind == "pid":
        return reply({"pid": os.getpid()})
    return reply({"unknown kind": kind}, 404)
