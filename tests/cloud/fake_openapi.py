#!/usr/bin/env python3
"""The fake Alibaba Cloud OpenAPI of the fault matrix, judged by Alibaba Cloud's own SDKs.

    fake_openapi.py serve PORT FILE.json SECRET TOKEN LOG
    fake_openapi.py conform ACTIONS.json [BODIES.json]
    fake_openapi.py fields SPEC.json

Nothing here is this project's belief about the API: every decision is the official Python
SDK's (PyPI: alibabacloud-tea-openapi and one package per product, installed by
scripts/prerequisites into the SDK virtualenv).

serve: listens on 127.0.0.1:PORT (inside the test's namespace) and, for every request:
- the product is the one whose SDK has the API version the request names (x-acs-version),
  and the action must be one its Client calls (`action = 'X'` of a `*_with_options` method);
- the signature is recomputed from the request as received with the SDK's signer
  (alibabacloud_tea_openapi.utils.Utils.get_authorization, over the headers the request says
  it signed, which must include host and every x-acs-* header) and the body hash with
  Utils.hash; the security token must be TOKEN;
- the parameters must be the ones the SDK's Client sends for that action: the request is
  rebuilt by calling the SDK's own `*_with_options` method with `models.<Action>Request().
  from_map(query)` (the call is captured before it leaves), and the query the SDK would send
  must equal the one received — a parameter the request model does not have is refused;
- the answer (FILE.json: ACTION or `ACTION PARAM=VALUE` → body, or {"status": N, "body": B};
  re-read on every request) is validated through `models.<Action>ResponseBody`: every field
  must survive from_map/to_map, and every scalar must have the type the model declares.
Each request is logged to LOG as `ACTION signed=BOOL token=BOOL sdk=ok|WHY`. A request the
SDK would not send, or an answer the SDK would not parse, is refused (400 / 500) and logged.
Prints `ready` once listening.

conform: ACTIONS.json is [[version, action], ...] (what the agent can call); BODIES.json maps
ACTION → answer body. Exits 1 naming every action the SDK lacks and every body its response
model rejects.

fields: SPEC.json is {"sources": [[version, RUST_FILE, [action, ...]], ...], "values": [...]}:
every capitalised string literal in RUST_FILE (before its tests) must be a field of one of
those actions' response models (as their from_map reads them), or one of the listed values
(enum words the agent compares against, not fields). Exits 1 naming each one that is not.
"""

import hashlib
import hmac
import importlib
import inspect
import json
import re
import socketserver
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# API version → the SDK package that implements it.
PRODUCTS = {
    "2014-05-26": "alibabacloud_ecs20140526",
    "2016-04-28": "alibabacloud_vpc20160428",
    "2017-05-18": "alibabacloud_antiddos_public20170518",
    "2017-12-07": "alibabacloud_cloudfw20171207",
    "2018-12-03": "alibabacloud_sas20181203",
}
ALGORITHM = "ACS3-HMAC-SHA256"


class Rejected(Exception):
    """The SDK would not send this request, or not accept this answer."""


class Product:
    """One product's SDK: its Client, its models and which method calls which action."""

    def __init__(self, version):
        package = PRODUCTS.get(version)
        if package is None:
            raise Rejected(f"no SDK implements API version {version!r}")
        client_mod = importlib.import_module(package + ".client")
        self.models = importlib.import_module(package + ".models")
        self.version = version
        self.client_class = client_mod.Client
        source = inspect.getsource(client_mod)
        # `def x_with_options(` ... `action = 'X',` ... `version = 'V',` — the SDK's own table.
        self.methods = {}
        for m in re.finditer(
            r"\n    def (\w+)_with_options\(.*?action = '(\w+)',\s*version = '([\d-]+)'",
            source,
            re.S,
        ):
            if m.group(3) == version:
                self.methods[m.group(2)] = m.group(1) + "_with_options"

    def method(self, action):
        name = self.methods.get(action)
        if name is None:
            raise Rejected(
                f"{self.client_class.__module__} (API {self.version}) has no action {action}"
            )
        return name

    def query_sent_by_sdk(self, action, query):
        """The query the SDK's Client sends for `action` given these parameters."""
        method = self.method(action)
        request_class = getattr(self.models, action + "Request", None)
        if request_class is None:
            raise Rejected(f"the SDK has no {action}Request model")
        from alibabacloud_tea_openapi import utils_models
        from darabonba.runtime import RuntimeOptions

        config = utils_models.Config(
            access_key_id="made-up", access_key_secret="made-up", endpoint="127.0.0.1"
        )
        client = self.client_class(config)
        captured = {}

        def capture(params, req, runtime):
            captured["params"] = params
            captured["query"] = dict(req.query or {})
            captured["body"] = req.body
            raise StopIteration

        client.call_api = capture
        try:
            getattr(client, method)(request_class().from_map(dict(query)), RuntimeOptions())
        except StopIteration:
            pass
        params = captured.get("params")
        if params is None:
            raise Rejected(f"the SDK's {method} did not build a request")
        if (params.action, params.version) != (action, self.version):
            raise Rejected(f"the SDK's {method} calls {params.action} {params.version}")
        if captured.get("body"):
            raise Rejected(f"the SDK sends {action}'s parameters {list(captured['body'])} in the body")
        return {k: str(v) if not isinstance(v, str) else v for k, v in captured["query"].items()}

    def check_body(self, action, body):
        model = getattr(self.models, action + "ResponseBody", None)
        if model is None:
            raise Rejected(f"the SDK has no {action}ResponseBody model")
        if not isinstance(body, dict):
            raise Rejected(f"{action}: the answer is not an object")
        try:
            parsed = model().from_map(body)
            back = parsed.to_map()
        except Exception as e:  # the SDK's own parser failed: the shape is not the model's
            raise Rejected(f"{action}ResponseBody cannot parse it: {type(e).__name__}: {e}")
        same(body, back, action)
        typed(parsed, action)


def same(sent, kept, path):
    """Everything sent survives the model (a field the model drops is not in the real API)."""
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            raise Rejected(f"{path}: the model has no object here")
        for k, v in sent.items():
            if k not in kept:
                raise Rejected(f"{path}.{k}: the response model has no such field")
            same(v, kept[k], f"{path}.{k}")
    elif isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            raise Rejected(f"{path}: the model has no list here")
        for i, (a, b) in enumerate(zip(sent, kept)):
            same(a, b, f"{path}[{i}]")


SCALARS = {"str": (str,), "int": (int,), "bool": (bool,), "float": (int, float)}


def typed(model, path):
    """Every scalar has the type the model's constructor declares (`total_count: str`)."""
    for name, param in inspect.signature(type(model).__init__).parameters.items():
        if name == "self":
            continue
        value = getattr(model, name, None)
        if value is None:
            continue
        check_type(str(param.annotation), value, f"{path}.{name}")


def check_type(annotation, value, path):
    annotation = annotation.strip()
    if annotation in SCALARS:
        ok = isinstance(value, SCALARS[annotation])
        if annotation in ("int", "float") and isinstance(value, bool):
            ok = False
        if not ok:
            raise Rejected(f"{path}: the SDK declares {annotation}, the answer has {type(value).__name__} {value!r}")
    elif annotation.startswith("List["):
        if not isinstance(value, list):
            raise Rejected(f"{path}: the SDK declares a list, the answer has {type(value).__name__}")
        for i, v in enumerate(value):
            if v is not None:
                check_type(annotation[5:-1], v, f"{path}[{i}]")
    elif annotation.startswith("Dict["):
        if not isinstance(value, dict):
            raise Rejected(f"{path}: the SDK declares an object, the answer has {type(value).__name__}")
    elif annotation.startswith("main_models."):
        typed(value, path)


PRODUCTS_LOADED = {}
LOCK = threading.Lock()


def product(version):
    with LOCK:
        if version not in PRODUCTS_LOADED:
            PRODUCTS_LOADED[version] = Product(version)
        return PRODUCTS_LOADED[version]


def signed_with(method, path, query, headers, body, secret):
    """Whether the request's Authorization is the SDK's signature with `secret`."""
    from alibabacloud_tea_openapi.utils import Utils
    from darabonba.request import DaraRequest

    auth = headers.get("authorization", "")
    m = re.fullmatch(rf"{ALGORITHM} Credential=([^,]*),SignedHeaders=([^,]*),Signature=(\w+)", auth)
    if not m:
        return False, "no ACS3-HMAC-SHA256 Authorization header"
    access_key, signed = m.group(1), m.group(2).split(";")
    unsigned = [h for h in headers if (h == "host" or h.startswith("x-acs-")) and h not in signed]
    if unsigned:
        return False, f"headers not signed: {unsigned}"
    payload = Utils.hash(body, ALGORITHM).hex()
    if headers.get("x-acs-content-sha256") != payload:
        return False, "x-acs-content-sha256 is not the body's hash"
    req = DaraRequest()
    req.method = method
    req.pathname = path
    req.query = dict(query)
    req.headers = {h: headers.get(h, "") for h in signed}
    expected = Utils.get_authorization(req, ALGORITHM, payload, access_key, secret)
    return hmac.compare_digest(expected, auth), "signature differs from the SDK's"


def answer(file, action, query):
    try:
        with open(file) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        return 500, {"Code": "FakeBroken", "Message": str(e)}
    entry = None
    for k, v in query.items():
        entry = doc.get(f"{action} {k}={v}")
        if entry is not None:
            break
    if entry is None:
        entry = doc.get(action)
    if entry is None:
        return 404, {"Code": "InvalidAction.NotFound", "Message": f"the fake does not know {action}"}
    if isinstance(entry, dict) and "status" in entry and "body" in entry:
        return int(entry["status"]), entry["body"]
    return 200, entry


def serve(port, file, secret, token, log):
    log_lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            action = headers.get("x-acs-action", "")
            version = headers.get("x-acs-version", "")
            signed, why_unsigned = signed_with(
                self.command, url.path or "/", query, headers, body, secret
            )
            token_ok = headers.get("x-acs-security-token") == token
            sdk = "ok"
            status, out = 200, None
            try:
                p = product(version)
                sent = p.query_sent_by_sdk(action, query)
                if sent != query:
                    extra = sorted(set(query) - set(sent))
                    raise Rejected(
                        f"{action}: the SDK's {action}Request has no parameter {extra}"
                        if extra
                        else f"{action}: the SDK would send {sent}, not {query}"
                    )
            except Rejected as e:
                sdk, status, out = str(e), 400, {"Code": "InvalidParameter", "Message": str(e)}
            if out is None and not signed:
                status, out = 400, {"Code": "SignatureDoesNotMatch", "Message": why_unsigned}
            elif out is None and not token_ok:
                status, out = 400, {"Code": "InvalidSecurityToken.Mismatch", "Message": "the security token is not the role's"}
            elif out is None:
                status, out = answer(file, action, query)
                if status == 200:
                    try:
                        product(version).check_body(action, out)
                    except Rejected as e:
                        sdk, status, out = str(e), 500, {"Code": "FakeNotConformant", "Message": str(e)}
            with log_lock, open(log, "a") as f:
                f.write(f"{action} signed={str(signed).lower()} token={str(token_ok).lower()} sdk={sdk}\n")
            self.reply(status, out)

        do_POST = handle_any
        do_GET = handle_any

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self):
            # HTTPServer.server_bind looks up the host name, which hangs in a namespace
            # without DNS (../shared/DEPS.md).
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    server = Server(("127.0.0.1", port), Handler)
    # Load every product before `ready`: the agent's calls then meet no import delay.
    for version in PRODUCTS:
        product(version)
    print("ready", flush=True)
    server.serve_forever()


def conform(actions_file, bodies_file=None):
    failures = []
    with open(actions_file) as f:
        actions = json.load(f)
    for version, action in actions:
        try:
            product(version).method(action)
        except Rejected as e:
            failures.append(str(e))
    if bodies_file:
        with open(bodies_file) as f:
            bodies = json.load(f)
        versions = {a: v for v, a in actions}
        for key, body in bodies.items():
            action = key.split(" ")[0]
            if isinstance(body, dict) and "status" in body and "body" in body:
                if int(body["status"]) != 200:
                    continue
                body = body["body"]
            version = versions.get(action)
            if version is None:
                failures.append(f"{key}: an answer for an action the agent does not call")
                continue
            try:
                product(version).check_body(action, body)
            except Rejected as e:
                failures.append(f"{key}: {e}")
    for f in failures:
        print(f)
    print(f"{len(actions)} actions checked, {len(failures)} not as the SDK has them")
    return 1 if failures else 0


def model_fields(cls, models, seen):
    """Every wire name the model (and the models inside it) reads in from_map."""
    if cls in seen:
        return set()
    seen.add(cls)
    src = inspect.getsource(cls.from_map)
    out = set(re.findall(r"m\.get\('([A-Za-z0-9_]+)'\)", src))
    for inner in re.findall(r"main_models\.([A-Za-z0-9_]+)\(\)", src):
        out |= model_fields(getattr(models, inner), models, seen)
    return out


def fields(spec_file):
    with open(spec_file) as f:
        spec = json.load(f)
    values = set(spec.get("values", []))
    failures = []
    for version, source, actions in spec["sources"]:
        p = product(version)
        known = set()
        for a in actions:
            known |= model_fields(getattr(p.models, a + "ResponseBody"), p.models, set())
        with open(source) as f:
            text = f.read().split("#[cfg(test)]")[0]
        for lit in sorted(set(re.findall(r'"([A-Z][A-Za-z0-9]+)"', text))):
            if lit not in known and lit not in values:
                failures.append(f"{source}: reads {lit!r}, which no response model of {actions} has")
    for f in failures:
        print(f)
    print(f"{len(spec['sources'])} sources checked, {len(failures)} fields the SDK does not have")
    return 1 if failures else 0


def main(argv):
    if len(argv) == 7 and argv[1] == "serve":
        serve(int(argv[2]), argv[3], argv[4], argv[5], argv[6])
        return 0
    if len(argv) in (3, 4) and argv[1] == "conform":
        return conform(*argv[2:])
    if len(argv) == 3 and argv[1] == "fields":
        return fields(argv[2])
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
