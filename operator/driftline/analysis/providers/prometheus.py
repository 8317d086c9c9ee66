"""Instant queries against the Prometheus HTTP API, for the analysis gates.

Synchronous on purpose: the operator's reconciles run in threads and already use
urllib3 through the Kubernetes client. Every failure is one of three typed errors, so
the gate state machine can count errors (no trustworthy answer) apart from failures
(an answer outside the bounds):

- `PrometheusUnavailable`: no answer, a timeout, a TLS failure, HTTP 429 or 5xx.
- `PrometheusQueryError`: Prometheus refused the query (HTTP 400 or 422: bad PromQL,
  an evaluation error), with Prometheus' own ``errorType`` and ``error``.
- `PrometheusResponseError`: an answer that is not the API's: not JSON, ``status`` not
  ``success``, no ``data``, too large, or an HTTP status the API does not use for a
  query (401, 403, 404, redirects).

Credentials come only from a Secret (`auth_from_secret_data`); the bearer token is never
logged and never part of a repr.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

logger = logging.getLogger(__name__)

# (connect, read) seconds: a hung Prometheus must not hold a reconcile thread for long.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
# An instant query that reduces to one number answers in bytes; a runaway query (every
# series of a metric) must not exhaust the operator's memory.
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024

# The keys read from a credentials Secret. A `kubernetes.io/service-account-token`
# Secret has both, under these names, so it can be referenced as it is.
SECRET_TOKEN_KEY = "token"
SECRET_CA_KEY = "ca.crt"


class PrometheusError(Exception):
    """A query that gave no usable result; `query` is the PromQL that was sent."""

    def __init__(self, message: str, *, query: str) -> None:
        super().__init__(message)
        self.query = query


class PrometheusUnavailable(PrometheusError):
    """No answer from Prometheus (refused, timeout, TLS) or an HTTP 429/5xx."""

    def __init__(self, message: str, *, query: str, status: int | None = None) -> None:
        super().__init__(message, query=query)
        self.status = status


class PrometheusQueryError(PrometheusError):
    """Prometheus refused the query: HTTP 400 (bad_data: bad PromQL) or 422 (execution)."""

    def __init__(self, message: str, *, query: str, status: int, error_type: str) -> None:
        super().__init__(message, query=query)
        self.status = status
        self.error_type = error_type


class PrometheusResponseError(PrometheusError):
    """An answer that is not a successful Prometheus API response."""

    def __init__(self, message: str, *, query: str, status: int | None = None) -> None:
        super().__init__(message, query=query)
        self.status = status


class PrometheusConfigError(ValueError):
    """A client that cannot be built as configured (URL, credentials); nothing was sent."""


@dataclass(frozen=True)
class PrometheusAuth:
    """How to authenticate to Prometheus: a bearer token and/or a CA bundle (PEM) that
    signs its serving certificate. The token is kept out of repr()."""

    bearer_token: str | None = field(default=None, repr=False)
    ca_data: str | None = None


def auth_from_secret_data(data: Mapping[str, str], *, secret: str = "Secret") -> PrometheusAuth:
    """The credentials in a Secret's ``data`` (values base64-encoded, as the API returns
    them): key ``token`` is a bearer token, key ``ca.crt`` a PEM CA bundle to verify
    Prometheus' certificate with. Either or both; other keys are ignored. `secret` names
    the Secret in errors (say, ``"ml/prometheus-auth"``)."""
    token_text = _decoded(data, SECRET_TOKEN_KEY, secret)
    ca_data = _decoded(data, SECRET_CA_KEY, secret)
    if token_text is None and ca_data is None:
        raise PrometheusConfigError(
            f"{secret} has neither key {SECRET_TOKEN_KEY!r} (a bearer token) nor "
            f"{SECRET_CA_KEY!r} (a PEM CA bundle); it has {sorted(data)}"
        )
    token = None
    if token_text is not None:
        # `echo token | kubectl create secret` leaves a newline: not part of the token.
        token = token_text.strip()
        if not token or any(character.isspace() for character in token):
            raise PrometheusConfigError(
                f"{secret} key {SECRET_TOKEN_KEY!r} is not a bearer token "
                "(it is empty or contains whitespace)"
            )
    if ca_data is not None and "-----BEGIN CERTIFICATE-----" not in ca_data:
        raise PrometheusConfigError(
            f"{secret} key {SECRET_CA_KEY!r} is not a PEM certificate bundle"
        )
    return PrometheusAuth(bearer_token=token, ca_data=ca_data)


def _decoded(data: Mapping[str, str], key: str, secret: str) -> str | None:
    if key not in data:
        return None
    try:
        return base64.b64decode(data[key], validate=True).decode("utf-8")
    except (binascii.Error, ValueError) as error:
        # ValueError covers UnicodeDecodeError; the value itself is never echoed.
        raise PrometheusConfigError(
            f"{secret} key {key!r} is not base64-encoded UTF-8 text"
        ) from error


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PrometheusClient:
    """Instant queries against one Prometheus (or an API-compatible server: Thanos,
    Mimir, VictoriaMetrics) at `base_url`, which may carry a path prefix.

    Thread-safe: one connection pool, shared by the reconciles that use it."""

    def __init__(
        self,
        base_url: str,
        *,
        bearer_token: str | None = None,
        ca_file: str | None = None,
        ca_data: str | None = None,
        insecure_skip_verify: bool = False,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PrometheusConfigError(
                f"Prometheus URL {base_url!r} is not an http:// or https:// URL with a host"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise PrometheusConfigError(
                f"Prometheus URL {base_url!r} must not carry a query, a fragment or "
                "credentials (credentials come from a Secret)"
            )
        if bearer_token is not None and parts.scheme == "http" and not _is_loopback(parts.hostname):
            # A token sent in clear text over the network is a token given away.
            raise PrometheusConfigError(
                f"refusing to send a bearer token to {base_url!r} over plain http; "
                "use an https:// URL"
            )
        if timeout[0] <= 0 or timeout[1] <= 0:
            raise PrometheusConfigError(f"timeouts must be positive, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._query_url = f"{self.base_url}/api/v1/query"
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        pool_options: dict[str, Any] = {}
        if parts.scheme == "https":
            if insecure_skip_verify:
                pool_options["cert_reqs"] = ssl.CERT_NONE
            else:
                pool_options["cert_reqs"] = ssl.CERT_REQUIRED
                if ca_file is not None:
                    pool_options["ca_certs"] = ca_file
                if ca_data is not None:
                    pool_options["ca_cert_data"] = ca_data
        self._pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            retries=False,
            **pool_options,
        )

    @classmethod
    def with_auth(
        cls,
        base_url: str,
        auth: PrometheusAuth,
        *,
        insecure_skip_verify: bool = False,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> PrometheusClient:
        """A client using the credentials read from a Secret (`auth_from_secret_data`)."""
        return cls(
            base_url,
            bearer_token=auth.bearer_token,
            ca_data=auth.ca_data,
            insecure_skip_verify=insecure_skip_verify,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        authenticated = "Authorization" in self._headers
        return (
            f"PrometheusClient({self.base_url!r}, bearer_token={'***' if authenticated else None})"
        )

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def instant_query(self, promql: str, at: datetime | None = None) -> dict[str, Any]:
        """The ``data`` object of ``/api/v1/query`` for `promql` evaluated at `at` (a
        timezone-aware time; Prometheus' now when None): ``{"resultType": ..., "result":
        ...}``. Raises a `PrometheusError` subclass for anything else."""
        form = {"query": promql}
        if at is not None:
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError(f"query time {at!r} has no timezone; pass an aware datetime")
            form["time"] = f"{at.timestamp():.3f}"
        # Prometheus stops evaluating after this long, so it does not keep working on a
        # query whose answer nobody waits for any more. Plain seconds: Prometheus reads a
        # float there, while its duration syntax has no fractions ("2.5s" is refused).
        form["timeout"] = f"{self.timeout[1]:g}"
        logger.debug("Prometheus query at %s: %s", self.base_url, promql)
        try:
            response = self._pool.request(
                "POST",
                self._query_url,
                body=urlencode(form),
                headers=self._headers,
                preload_content=False,
                redirect=False,
            )
            try:
                body = self._read_bounded(response, promql)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as error:
            raise PrometheusUnavailable(
                f"no answer from Prometheus at {self.base_url}: {error}", query=promql
            ) from error
        return self._data(response.status, body, promql)

    def _read_bounded(self, response: urllib3.BaseHTTPResponse, promql: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.stream(64 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise PrometheusResponseError(
                    f"Prometheus at {self.base_url} answered with more than "
                    f"{self.max_response_bytes} bytes",
                    query=promql,
                    status=response.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _data(self, status: int, body: bytes, promql: str) -> dict[str, Any]:
        answer = _json_object(body)
        if status in (400, 422) and answer is not None:
            error_type = str(answer.get("errorType", "unknown"))
            message = str(answer.get("error", "")) or body[:500].decode(errors="replace")
            raise PrometheusQueryError(
                f"Prometheus refused the query ({status} {error_type}): {message}",
                query=promql,
                status=status,
                error_type=error_type,
            )
        if status == 429 or status >= 500:
            detail = (
                f"{answer.get('errorType', '')}: {answer.get('error', '')}"
                if answer is not None
                else body[:500].decode(errors="replace")
            )
            raise PrometheusUnavailable(
                f"Prometheus at {self.base_url} answered HTTP {status}: {detail}",
                query=promql,
                status=status,
            )
        if status != 200:
            raise PrometheusResponseError(
                f"Prometheus at {self.base_url} answered HTTP {status}: "
                f"{body[:500].decode(errors='replace')}",
                query=promql,
                status=status,
            )
        if answer is None:
            raise PrometheusResponseError(
                f"Prometheus at {self.base_url} answered with something that is not a JSON "
                f"object: {body[:200]!r}",
                query=promql,
                status=status,
            )
        if answer.get("status") != "success":
            raise PrometheusResponseError(
                f"Prometheus at {self.base_url} answered status {answer.get('status')!r}: "
                f"{answer.get('errorType', '')} {answer.get('error', '')}".rstrip(),
                query=promql,
                status=status,
            )
        data = answer.get("data")
        if not isinstance(data, dict) or "resultType" not in data or "result" not in data:
            raise PrometheusResponseError(
                f"Prometheus at {self.base_url} answered without a data object with "
                f"resultType and result: {body[:200]!r}",
                query=promql,
                status=status,
            )
        for warning in answer.get("warnings") or ():
            logger.warning("Prometheus warning for query %s: %s", promql, warning)
        return data


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
