"""Requests signed by JD Cloud's official Python SDK (jdcloud_sdk.core.signer.Signer, the signer
its clients use), sent to a gateway; then tampered copies of them. Prints one JSON object: each
case's status and x-fngate-error.

    python jd_signed.py BASE_URL ACCESS_KEY SECRET_KEY REGION
"""
import datetime
import json
import sys

import requests
from jdcloud_sdk.core.credential import Credential
from jdcloud_sdk.core.logger import Logger
from jdcloud_sdk.core.signer import Signer

base, access_key, secret_key, region = sys.argv[1:5]
signer = Signer(Logger(0))


def signed(method, path, body="", headers=None, date=None):
    """Headers as the SDK's client signs them (content-type, plus what the caller set)."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if date:
        h["x-jdcloud-date"] = date
    signer.sign(method=method, service="apigateway", region=region, uri=base + path,
                headers=h, data=body, credential=Credential(access_key, secret_key),
                security_token="")
    return h


def send(method, path, body, headers):
    r = requests.request(method, base + path, data=body.encode("utf-8"), headers=headers)
    got = {"status": r.status_code, "error": r.headers.get("x-fngate-error")}
    if r.status_code == 200 and r.text:
        got["event"] = r.json()
    return got


results = {}
get_path = "/sig/users/1?lang=zh&tag=b&tag=a&q=a+b%2Fc"
h = signed("GET", get_path)
results["get"] = send("GET", get_path, "", h)
results["replayed"] = send("GET", get_path, "", h)

body = json.dumps({"name": "世界", "n": 1}, ensure_ascii=False)
h = signed("POST", "/sig/users/2", body, {"x-jdcloud-nonce": "nonce-post-1"})
results["post"] = send("POST", "/sig/users/2", body, h)

# A nonce signed with the request: a second request may not reuse it.
h = signed("POST", "/sig/users/2", body + " ", {"x-jdcloud-nonce": "nonce-post-1"})
results["nonce_reused"] = send("POST", "/sig/users/2", body + " ", h)

path = "/sig/users/%E4%B8%96%E7%95%8C"
h = signed("GET", path)
results["non_ascii_path"] = send("GET", path, "", h)

h = signed("POST", "/sig/users/3", body)
results["body_tampered"] = send("POST", "/sig/users/3", body.replace("1", "2"), h)

h = signed("GET", "/sig/users/4")
results["path_tampered"] = send("GET", "/sig/users/5", "", h)

h = signed("POST", "/sig/users/6", body)
h["Content-Type"] = "text/plain"
results["header_tampered"] = send("POST", "/sig/users/6", body, h)

old = (datetime.datetime.utcnow() - datetime.timedelta(minutes=10)).strftime("%Y%m%dT%H%M%SZ")
h = signed("GET", "/sig/users/7", date=old)
results["old_date"] = send("GET", "/sig/users/7", "", h)

h = signed("GET", "/sig/users/8")
h["Authorization"] = h["Authorization"].replace(access_key, "nobody", 1)
results["unknown_key"] = send("GET", "/sig/users/8", "", h)

results["unsigned"] = send("GET", "/sig/users/9", "", {})

wrong = Signer(Logger(0))
h = {"Content-Type": "application/json"}
wrong.sign(method="GET", service="apigateway", region=region, uri=base + "/sig/users/10",
           headers=h, data="", credential=Credential(access_key, secret_key + "x"),
           security_token="")
results["wrong_secret"] = send("GET", "/sig/users/10", "", h)

print(json.dumps(results))
