"""The metric names a PromQL expression reads, found by tokenising it.

A regular expression over the text cannot tell a metric from a label name in a grouping
(``sum by (le)``), a function, a keyword, a duration or a string. This tokeniser follows
PromQL's lexical grammar (strings with escapes, durations, numbers, identifiers with
colons, operators) and Grafana's template variables (``$var``, ``${var}``, ``[[var]]``),
and keeps the context each identifier stands in:

- inside ``{...}`` an identifier is a label name, except that ``__name__="x"`` reads ``x``;
- inside ``[...]`` (ranges, subqueries) only durations and variables stand;
- after ``by``, ``without``, ``on``, ``ignoring``, ``group_left``, ``group_right`` the
  parenthesised list holds label names;
- an identifier followed by ``(``, ``by`` or ``without`` is a function or aggregation;
- keywords (``and``, ``offset``, ``bool``, ``inf``, ...) are not metrics.

Everything else an identifier can be is a metric name (or a recording rule's name).
"""

from __future__ import annotations

import re

GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+\b)
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<identifier>[a-zA-Z_:][\w:]*)
  | (?P<operator>=~|!~|==|!=|<=|>=|[-+*/%^<>=@,:])
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
    """,
    re.VERBOSE,
)
_CLOSING = {"(": ")", "{": "}", "[": "]"}


class PromQLSyntaxError(ValueError):
    """The expression has a character PromQL does not know, or unbalanced brackets."""


def tokens(expression: str) -> list[tuple[str, str]]:
    """``(kind, text)`` for every token but white space and comments."""
    found, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None:
            raise PromQLSyntaxError(
                f"unexpected {expression[position]!r} at {position} in {expression!r}"
            )
        if match.lastgroup != "space":
            found.append((match.lastgroup, match.group()))
        position = match.end()
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names ``expression`` reads (see the module's rules)."""
    found = tokens(expression)
    names: set[str] = set()
    # Each open bracket with what it holds: "labels", "range", "grouping" or "expression".
    stack: list[tuple[str, str]] = []
    for index, (kind, text) in enumerate(found):
        following = found[index + 1][1] if index + 1 < len(found) else ""
        context = stack[-1][1] if stack else "expression"
        if kind == "open":
            previous = found[index - 1][1].lower() if index else ""
            holds = {"{": "labels", "[": "range"}.get(text, "expression")
            if text == "(" and previous in GROUPING:
                holds = "grouping"
            stack.append((text, holds))
        elif kind == "close":
            if not stack or _CLOSING[stack[-1][0]] != text:
                raise PromQLSyntaxError(f"unbalanced {text!r} in {expression!r}")
            stack.pop()
        elif kind == "identifier" and context == "expression":
            if following.lower() not in {"(", "by", "without"} and text.lower() not in KEYWORDS:
                names.add(text)
        elif kind == "identifier" and context == "labels" and text == "__name__":
            value = found[index + 2] if index + 2 < len(found) else ("", "")
            if following == "=" and value[0] == "string":
                names.add(value[1][1:-1])
    if stack:
        raise PromQLSyntaxError(f"unclosed {stack[-1][0]!r} in {expression!r}")
    return names


def grafana_query(query: str) -> str:
    """The PromQL inside a Grafana variable query: ``label_values(EXPR, label)`` and
    ``query_result(EXPR)`` read EXPR, ``label_values(label)`` reads no metric."""
    if match := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query, re.DOTALL):
        return match.group(1)
    if re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", query):
        return ""
    if match := re.fullmatch(r"\s*query_result\((.*)\)\s*", query, re.DOTALL):
        return match.group(1)
    return query
