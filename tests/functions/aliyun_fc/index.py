# -*- coding: utf-8 -*-
"""A handler written for Alibaba Cloud Function Compute's API-gateway trigger, as its docs show
one: the event arrives as the bytes of its JSON, the body may be base64, and the reply is
{isBase64Encoded, statusCode, headers, body}. Nothing here knows fngate; tests/aliyun.rs serves it
with `format: aliyun` and the runtime's --raw-event."""

import base64
import json


def handler(event, context):
    evt = json.loads(event)
    body = evt["body"].encode("utf-8")
    if evt["isBase64Encoded"]:
        body = base64.b64decode(body)
    seen = {
        "path": evt["path"],
        "method": evt["httpMethod"],
        "query": evt["queryParameters"],
        "params": evt["pathParameters"],
        "custom": evt["headers"].get("X-Custom"),
        "body_hex": body.hex(),
        "base64": evt["isBase64Encoded"],
        "request_id": context.request_id,
        "event_type": type(event).__name__,
    }
    return {
        "isBase64Encoded": False,
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Fc": "yes"},
        "body": json.dumps(seen),
    }
