"""The gateway's HTTP/JSON API (openapi.yaml), as a WSGI application over a Gateway.

Every request is answered with JSON. A refused request gets a 4xx status and
`{"error": what is wrong, "field": where in the request}`, and changes nothing: the Gateway
checks a request completely before it writes a map. `lab agent` serves this application on a
unix socket (agent.py); tests may also call it directly.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from lab.datapath.gateway.control import Gateway
from lab.datapath.gateway.model import Backend, Service, check, http_status, openapi
from lab.digits import parse_int
from lab.errors import InputError, describe
from lab.schema import nesting

log = logging.getLogger("lab.gateway")

MAX_BODY = 1 << 20
MAX_DEPTH = 32          # the documents nest 3 deep; JSON that nests 32 is not ours
Reply = tuple[int, Any]


class _Request:
    def __init__(self, environ: dict[str, Any]):
        self.method = environ["REQUEST_METHOD"].upper()
        self.path = environ.get("PATH_INFO") or "/"
        self.query = environ.get("QUERY_STRING", "")
        self.environ = environ

    def body(self) -> Any:
        try:
            length = parse_int(self.environ.get("CONTENT_LENGTH") or "0")
        except ValueError as e:
            raise InputError(f"bad Content-Length: {e}") from None
        if length > MAX_BODY:
            raise InputError(f"the body is larger than {MAX_BODY} bytes")
        raw = self.environ["wsgi.input"].read(length) if length else b""
        if not raw:
            raise InputError("this request needs a JSON body")
        return parse_json(raw)

    def query_int(self, name: str, low: int, high: int) -> int | None:
        from urllib.parse import parse_qs
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        if not values:
            return None
        return _int(values[-1], name, low, high)


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        return parse_int(text, low, high)
    except ValueError as e:
        raise InputError(str(e), path=(name,)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: strict JSON (no NaN or Infinity), nested at most MAX_DEPTH
    deep, so that no later step (schema checks, the handlers) recurses without bound."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"the body is nested more than {MAX_DEPTH} deep") from None
    except (UnicodeDecodeError, ValueError) as e:    # JSONDecodeError, too many digits
        raise InputError(f"the body is not JSON: {e}") from None
    if nesting(data) > MAX_DEPTH:
        raise InputError(f"the body is nested more than {MAX_DEPTH} deep")
    return data


Handler = Callable[..., Reply]


class GatewayApi:
    """WSGI application: `GatewayApi(gateway)(environ, start_response)`."""

    def __init__(self, gateway: Gateway):
        self.gw = gateway
        params = openapi()["components"]["parameters"]
        self._sid = params["ServiceId"]["schema"]
        self._bid = params["BackendId"]["schema"]
        sid, bid = r"(?P<service_id>[^/]+)", r"(?P<backend_id>[^/]+)"
        routes: list[tuple[str, dict[str, Handler]]] = [
            (r"/v1/healthz", {"GET": self.health}),
            (r"/v1/openapi.json", {"GET": self.document}),
            (r"/v1/settings", {"GET": self.settings}),
            (r"/v1/statistics", {"GET": self.statistics}),
            (r"/v1/connections", {"GET": self.connections}),
            (r"/v1/services", {"GET": self.list_services, "POST": self.create_service}),
            (rf"/v1/services/{sid}", {"GET": self.get_service, "PUT": self.replace_service,
                                      "DELETE": self.delete_service}),
            (rf"/v1/services/{sid}/backends", {"POST": self.add_backend}),
            (rf"/v1/services/{sid}/backends/{bid}", {"PATCH": self.update_backend,
                                                     "DELETE": self.delete_backend}),
        ]
        self._routes = [(re.compile(pattern + r"/?"), methods) for pattern, methods in routes]

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = _Request(environ)
        headers: list[tuple[str, str]] = []
        try:
            status, payload = self._dispatch(req, headers)
        except InputError as e:
            status, payload = http_status(e), {"error": e.message}
            if e.path:
                payload["field"] = describe(e.path)
        except Exception:  # a bug, not the client's fault: say so, keep serving
            log.exception("%s %s failed", req.method, req.path)
            status, payload = 500, {"error": "internal error (see the agent's log)"}
        log.info("%s %s -> %d", req.method, req.path, status)
        body = b"" if status == 204 else json.dumps(payload, indent=1).encode() + b"\n"
        if body:
            headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    def _dispatch(self, req: _Request, headers: list[tuple[str, str]]) -> Reply:
        for pattern, methods in self._routes:
            m = pattern.fullmatch(req.path)
            if not m:
                continue
            handler = methods.get(req.method)
            if handler is None:
                headers.append(("Allow", ", ".join(methods)))
                return 405, {"error": f"{req.method} is not allowed on {req.path} (allowed: "
                                      f"{', '.join(methods)})"}
            args = {}
            if "service_id" in m.groupdict():
                args["service_id"] = _int(m["service_id"], "service_id",
                                          self._sid["minimum"], self._sid["maximum"])
            if "backend_id" in m.groupdict():
                args["backend_id"] = _int(m["backend_id"], "backend_id",
                                          self._bid["minimum"], self._bid["maximum"])
            return handler(req, **args)
        return 404, {"error": f"no such resource: {req.path} (see /v1/openapi.json)"}

    # --- handlers ---------------------------------------------------------------------------

    def health(self, req: _Request) -> Reply:
        self.gw.settings()  # the maps answer
        return 200, {"status": "ok"}

    def document(self, req: _Request) -> Reply:
        return 200, openapi()

    def settings(self, req: _Request) -> Reply:
        s = self.gw.settings()
        return 200, s.to_dict() if s is not None else {}

    def statistics(self, req: _Request) -> Reply:
        return 200, self.gw.statistics()

    def connections(self, req: _Request) -> Reply:
        service = req.query_int("service", self._sid["minimum"], self._sid["maximum"])
        return 200, [c.to_dict() for c in self.gw.connections(service)]

    def list_services(self, req: _Request) -> Reply:
        return 200, [s.to_dict() for s in self.gw.services()]

    def create_service(self, req: _Request) -> Reply:
        svc = self.gw.add_service(Service.from_dict(req.body()))
        return 201, svc.to_dict()

    def get_service(self, req: _Request, service_id: int) -> Reply:
        return 200, self.gw.service(service_id).to_dict()

    def replace_service(self, req: _Request, service_id: int) -> Reply:
        svc = Service.from_dict(req.body())
        return 200, self.gw.replace_service(service_id, svc).to_dict()

    def delete_service(self, req: _Request, service_id: int) -> Reply:
        self.gw.delete_service(service_id)
        return 204, None

    def add_backend(self, req: _Request, service_id: int) -> Reply:
        backend = Backend.from_dict(req.body())
        return 201, self.gw.add_backend(service_id, backend).to_dict()

    def update_backend(self, req: _Request, service_id: int, backend_id: int) -> Reply:
        body = req.body()
        check("BackendPatch", body)
        weight = int(body["weight"]) if "weight" in body else None
        return 200, self.gw.update_backend(service_id, backend_id, weight=weight,
                                           state=body.get("state")).to_dict()

    def delete_backend(self, req: _Request, service_id: int, backend_id: int) -> Reply:
        self.gw.delete_backend(service_id, backend_id)
        return 204, None

