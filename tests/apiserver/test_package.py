"""The apiserver package as a library: its public names, what it imports, its request limits."""

from __future__ import annotations

import subprocess
import sys

from conftest import http

MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's MaxRequestBodyBytes


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_star_import_gives_every_name_in_all():
    result = _python(
        "import driftline.apiserver as package\n"
        "from driftline.apiserver import *\n"
        "missing = [n for n in package.__all__ if n not in globals()]\n"
        "assert not missing, missing\n"
    )
    assert result.returncode == 0, result.stderr


def test_no_module_of_the_product_imports_pytest():
    result = _python(
        "import importlib, pkgutil, sys\n"
        "import driftline.apiserver as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(f'driftline.apiserver.{module.name}')\n"
        "assert 'pytest' not in sys.modules, 'pytest was imported'\n"
    )
    assert result.returncode == 0, result.stderr


def test_a_body_over_the_apiserver_limit_gets_413(server):
    body = b'{"metadata": {"name": "big"}, "data": {"a": "' + b"x" * 3_500_000 + b'"}}'
    code, status = http(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 413
    assert status["reason"] == "RequestEntityTooLarge"
    assert status["message"] == f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}"
    code, _ = http(server, "GET", "/api/v1/namespaces/default/configmaps/big")
    assert code == 404  # nothing was stored


def test_a_body_under_the_limit_but_over_one_mebibyte_is_read(server):
    body = b'{"metadata": {"name": "medium"}, "data": {"a": "' + b"x" * 1_200_000 + b'"}}'
    code, created = http(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert code == 201, created
    assert len(created["data"]["a"]) == 1_200_000
