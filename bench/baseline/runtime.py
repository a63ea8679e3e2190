"""The Lambda Runtime API loop for the Python baseline (benchmark only).

What AWS's Python runtime (awslambdaric) does, reduced to the calls the benchmark needs:
import the handler module (its top level builds the boto3 clients: the cold start), then
GET .../invocation/next, call the handler, POST the response or the error. Runs under the
same Runtime API host as the Rust `bootstrap`s.
"""
import importlib
import json
import os
import sys
import traceback
import urllib.error
import urllib.request


class Context:
    def __init__(self, request_id, deadline_ms, function_arn):
        self.aws_request_id = request_id
        self.deadline_ms = deadline_ms
        self.invoked_function_arn = function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")


def post(url, body):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        r.read()


def main():
    base = "http://%s/2018-06-01/runtime" % os.environ["AWS_LAMBDA_RUNTIME_API"]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module, function = os.environ["_HANDLER"].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module), function)
    except Exception as e:  # reported the way Lambda reports a failed init
        post(base + "/init/error", {"errorType": type(e).__name__, "errorMessage": str(e)})
        raise
    while True:
        try:
            r = urllib.request.urlopen(base + "/invocation/next")
        except urllib.error.HTTPError:
            return  # the host is shutting this environment down
        with r:
            request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
            deadline = int(r.headers.get("Lambda-Runtime-Deadline-Ms", "0"))
            arn = r.headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
            os.environ["_X_AMZN_TRACE_ID"] = r.headers.get("Lambda-Runtime-Trace-Id", "")
            event = json.loads(r.read())
        try:
            result = handler(event, Context(request_id, deadline, arn))
        except Exception as e:
            post("%s/invocation/%s/error" % (base, request_id), {
                "errorType": type(e).__name__, "errorMessage": str(e),
                "stackTrace": traceback.format_exc().splitlines()})
            continue
        post("%s/invocation/%s/response" % (base, request_id), result)


if __name__ == "__main__":
    main()
