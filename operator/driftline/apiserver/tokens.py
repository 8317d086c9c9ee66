"""Bearer tokens: kube-apiserver's static token file, and ServiceAccount tokens (pure parts).

The token file is `--token-auth-file`'s CSV: `token,user,uid[,"group1,group2"]`, one
identity a line; a `#` line is a comment. Every authenticated user is also in the group
`system:authenticated`, as upstream adds it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from driftline.apiserver.rbac import AUTHENTICATED_GROUP, UserInfo


class TokenFileError(ValueError):
    """A token file that kube-apiserver would refuse; the message names the line."""


def with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP))


def parse_token_file(text: str, source: str = "token file") -> dict[str, UserInfo]:
    tokens: dict[str, UserInfo] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if len(row) < 3:
            raise TokenFileError(
                f"{source} line {number}: needs at least token,user,uid; got {len(row)} field(s)"
            )
        token, user, uid = (field.strip() for field in row[:3])
        if not token or not user:
            raise TokenFileError(f"{source} line {number}: the token and the user may not be empty")
        if token in tokens:
            raise TokenFileError(f"{source} line {number}: duplicate token for user {user!r}")
        groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
        tokens[token] = with_authenticated(UserInfo(user, uid, groups))
    return tokens


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None without one."""
    value = headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
