"""An ASGI application behind Mangum, the adapter AWS Lambda users put in front of ASGI apps: it
reads API Gateway's events (payload 1.0 and 2.0) and writes API Gateway's replies. Nothing here
knows fngate; tests/aws.rs serves it through `format: aws-v1` and `aws-v2`."""

import json

from mangum import Mangum


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "client": list(scope["client"]) if scope.get("client") else None,
        "body": body.decode(),
    }
    await send({
        "type": "http.response.start",
        "status": 201,
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-app", b"asgi"),
            (b"set-cookie", b"a=1; Path=/"),
            (b"set-cookie", b"b=2"),
        ],
    })
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


handler = Mangum(app, lifespan="off")
