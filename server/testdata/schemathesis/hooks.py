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
import uuid

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.graphql import nodes
from schemathesis.graphql.checks import GraphQLServerError

# --- Custom scalars -----------------------------------------------------
#
# An invalid Time or Cursor anywhere in an operation makes the server refuse
# all of it (BAD_USER_INPUT), so most generated values are valid (3 in 4),
# or the connections and filters would hardly ever be queried.


def _mostly(valid, invalid):
    return st.integers(min_value=0, max_value=3).flatmap(lambda i: invalid if i == 0 else valid)


# Time is RFC 3339 in GraphQL.
_rfc3339 = st.datetimes(
    min_value=datetime.datetime(1, 1, 1),
    max_value=datetime.datetime(9999, 12, 31),
).map(lambda d: d.isoformat(timespec="microseconds") + "Z")
schemathesis.graphql.scalar("Time", _mostly(_rfc3339, st.text(max_size=40)).map(nodes.String))


# A connection cursor is entgql's: unpadded base64 of the msgpack map
# {"i": <16 bytes of the UUID>} or, under an orderBy, {"i": ..., "v": [values]}.
def _msgpack_str(s: str) -> bytes:
    b = s.encode()
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def _msgpack_value(v) -> bytes:
    if isinstance(v, str):
        return _msgpack_str(v)
    return b"\xd3" + v.to_bytes(8, "big", signed=True)  # int64


def _cursor(id_: uuid.UUID, values) -> str:
    body = _msgpack_str("i") + b"\xc4\x10" + id_.bytes
    if values is not None:
        body += _msgpack_str("v") + bytes([0x90 | len(values)]) + b"".join(_msgpack_value(v) for v in values)
    raw = bytes([0x80 | (1 if values is None else 2)]) + body
    return base64.b64encode(raw).decode().rstrip("=")


_SEEDED = [uuid.UUID(f"00000000-0000-4000-8000-{n:012d}") for n in (1, 2, 101, 102, 201)]
_cursor_values = st.lists(st.one_of(st.text(max_size=20), st.integers(-(2**40), 2**40)), max_size=2)
_valid_cursor = st.builds(_cursor, st.one_of(st.sampled_from(_SEEDED), st.uuids()), st.one_of(st.none(), _cursor_values))
_bad_cursor = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()),
)
schemathesis.graphql.scalar("Cursor", _mostly(_valid_cursor, _bad_cursor).map(nodes.String))


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

# An Upload only exists as a multipart variable (GraphQL multipart request
# spec); schemathesis sends JSON, so any literal it can send is invalid and
# must be refused as bad input.
schemathesis.graphql.scalar("Upload", st.one_of(st.text(max_size=20).map(nodes.String), st.just(nodes.Null)))

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
        "VALIDATION",
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


def _request_strings(response, case) -> list[str]:
    """What the client sent (query, variables, URL), lowercased."""
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
    return [p.lower() for p in parts]


def _literals(text: str) -> list[str]:
    """The string literals of a GraphQL document, or the text itself."""
    try:
        doc = graphql.parse(text)
    except Exception:
        return [text]
    found = [text]

    class Visitor(graphql.Visitor):
        def enter_string_value(self, node, *_):
            found.append(node.value)

    graphql.visit(doc, Visitor())
    return found


# Strings sent earlier in this run that contain a marker: stored, they may
# come back in a later response (a post body read by a later query).
_SENT_WITH_MARKERS: set[str] = set()


@schemathesis.check
def no_internal_leaks(ctx, response, case):
    """No response shows a panic, a Go stack trace or a database error.

    Matching is case-insensitive over every string in a JSON body (over the
    raw text of any other body). A marker that is the client's own input
    coming back is not a leak: one that the request contains (a validation
    message quoting it), or a string sent earlier in the run, containing the
    marker, that the response string contains (stored data read back).
    """
    text = response.content.decode("utf-8", "replace")
    try:
        strings = list(_strings(json.loads(text)))
    except ValueError:
        strings = [text]
    parts = _request_strings(response, case)
    sent = "\n".join(parts)
    for part in parts:
        if any(m.lower() in part for m in LEAKS):
            for value in _literals(part):
                if any(m.lower() in value for m in LEAKS):
                    _SENT_WITH_MARKERS.add(value)
    found = []
    for s in strings:
        low = s.lower()
        for marker in LEAKS:
            m = marker.lower()
            if m not in low or m in sent:
                continue
            if any(m in earlier and earlier in low for earlier in _SENT_WITH_MARKERS):
                continue
            if (marker, s) not in found:
                found.append((marker, s))
    if found:
        lines = [f"{marker!r} in {s[:300]!r}" for marker, s in found[:5]]
        raise AssertionError("Response leaks internals:\n" + "\n".join(lines))
