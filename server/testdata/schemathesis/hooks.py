"""Schemathesis hooks for TestSchemathesis (server/schemathesis_test.go).

Loaded with SCHEMATHESIS_HOOKS=<this file>. They add:

- strategies for Kiln's custom scalars, so that operations taking them are
  generated at all (JSON) or with inputs that reach the resolvers (Time,
  Cursor), invalid ones included;
- kiln_not_a_server_error: schemathesis' own not_a_server_error, except that
  a resolver error carrying one of Kiln's documented client-error codes
  (UNAUTHENTICATED, NOT_FOUND, ...) is not a server error. The built-in check
  treats every GraphQL error that has a `path` and no Apollo client code as a
  server error, so an anonymous `signOutEverywhere` ("sign in first") would
  count as one. Everything else it reports still fails: an HTTP 5xx, an
  INTERNAL_SERVER_ERROR, UNAVAILABLE or TIMEOUT, an error without a code;
- no_internal_leaks: no response may show internals (panics, Go stack
  traces, database errors) anywhere in its body.
"""

from __future__ import annotations

import base64
import datetime
import json
import string

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.graphql import nodes
from schemathesis.graphql.checks import GraphQLServerError

# --- Custom scalars -----------------------------------------------------

# Time is RFC 3339 in GraphQL; other text must be refused as bad input.
_rfc3339 = st.datetimes(
    min_value=datetime.datetime(1, 1, 1),
    max_value=datetime.datetime(9999, 12, 31),
).map(lambda d: d.isoformat(timespec="microseconds") + "Z")
schemathesis.graphql.scalar("Time", st.one_of(_rfc3339, st.text(max_size=40)).map(nodes.String))

# Cursors are opaque strings the server decodes: any text, and base64.
_b64 = st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
schemathesis.graphql.scalar("Cursor", st.one_of(st.text(max_size=80), _b64).map(nodes.String))


def _field(name: str, value: graphql.ValueNode) -> graphql.ObjectFieldNode:
    return graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)


_json_names = st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=12)
_json_leaf = st.one_of(
    st.text(max_size=30).map(nodes.String),
    st.integers(min_value=-(2**53), max_value=2**53).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.booleans().map(nodes.Boolean),
    st.just(nodes.Null),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(nodes.List),
        st.dictionaries(_json_names, inner, max_size=4).map(
            lambda d: nodes.Object([_field(k, v) for k, v in d.items()])
        ),
    ),
    max_leaves=12,
)
# JSON arguments are objects (extra: claims, preferences, ...).
schemathesis.graphql.scalar(
    "JSON",
    st.dictionaries(_json_names, _json_value, max_size=5).map(
        lambda d: nodes.Object([_field(k, v) for k, v in d.items()])
    ),
)

# --- Checks ---------------------------------------------------------------

# extensions.code values that mean "the client asked for something it may
# not have or that is invalid": a 4xx in REST terms.
CLIENT_ERROR_CODES = frozenset(
    {
        # gqlgen: parse / validation / variable coercion
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
        "BAD_USER_INPUT",
        "PERSISTED_QUERY_NOT_FOUND",
        "PERSISTED_QUERY_NOT_SUPPORTED",
        "COMPLEXITY_LIMIT_EXCEEDED",
        # Kiln
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "NOT_FOUND",
        "CONFLICT",
        "RATE_LIMITED",
        "IN_PROGRESS",
        "REQUEST_TOO_LARGE",
        "QUERY_TOO_DEEP",
        "TOO_MANY_ALIASES",
        "TOO_MANY_ROOT_FIELDS",
        "PAGE_SIZE_TOO_LARGE",
        "PERSISTED_QUERY_NOT_ALLOWED",
    }
)


def _code(error: object) -> object:
    if isinstance(error, dict) and isinstance(error.get("extensions"), dict):
        return error["extensions"].get("code")
    return None


@schemathesis.check
def kiln_not_a_server_error(ctx, response, case):
    """not_a_server_error, with Kiln's client-error codes counted as client errors."""
    try:
        return not_a_server_error(ctx, response, case)
    except GraphQLServerError as exc:
        errors = exc.errors or []
        if errors and all(_code(e) in CLIENT_ERROR_CODES for e in errors):
            return None
        raise


LEAKS = ("panic", "goroutine", ".go:", "sqlite", "constraint failed", "SQLSTATE", "pq:", "runtime error")


def _strings(value: object):
    """Every string in a decoded JSON document, object keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _request_text(response, case) -> str:
    """What the client sent (query and variables), to tell an echo from a leak."""
    parts = []
    body = case.body
    if isinstance(body, (dict, list)):
        parts.extend(_strings(body))
    elif body is not None:
        parts.append(str(body))
    raw = response.request.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if raw:
        try:
            parts.extend(_strings(json.loads(raw)))
        except ValueError:
            parts.append(raw)
    if response.request.url:
        parts.append(response.request.url)
    return "\n".join(parts).lower()


@schemathesis.check
def no_internal_leaks(ctx, response, case):
    """No response shows a panic, a Go stack trace or a database error.

    Matching is case-insensitive over every string in a JSON body (over the
    raw text of any other body). A marker that the request itself contains is
    an echo of the client's own input (a validation message quoting it), not
    a leak.
    """
    text = response.content.decode("utf-8", "replace")
    try:
        strings = list(_strings(json.loads(text)))
    except ValueError:
        strings = [text]
    sent = None
    found = []
    for s in strings:
        low = s.lower()
        for marker in LEAKS:
            if marker.lower() in low:
                if sent is None:
                    sent = _request_text(response, case)
                if marker.lower() not in sent and (marker, s) not in found:
                    found.append((marker, s))
    if found:
        lines = [f"{marker!r} in {s[:300]!r}" for marker, s in found[:5]]
        raise AssertionError("Response leaks internals:\n" + "\n".join(lines))
