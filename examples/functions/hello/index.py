"""hello: the API-gateway example. Greets pathParameters.name and echoes the query and the body."""
import json


def handler(event, context):
    # format: jdcloud puts the request under "detail"; format: jdcloud-detail sends it bare.
    request = event.get("detail", event)
    name = (request.get("pathParameters") or {}).get("name", "world")
    print("greeting", name)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "message": "hello, {}".format(name),
            "method": request.get("httpMethod"),
            "query": request.get("queryParameters") or {},
            "body": request.get("body"),
            "function": context.function_name,
        }, ensure_ascii=False),
    }
