"""A catalog pattern (a Python regular expression, applied with ``fullmatch``) as an HTML
``pattern`` attribute, when it can be one.

A browser compiles the attribute as a JavaScript regular expression with the ``v`` flag and
anchors it (``^(?:…)$``), so a value must match whole, as with ``fullmatch``. Only a plain
subset translates with the same meaning: literals, ``.``, anchors, groups (capturing and
``(?:``), alternation, greedy or lazy quantifiers, classes with ranges, and the escapes
``\\d \\D \\w \\W \\s \\S`` and of punctuation. Anything else (look-arounds, named groups,
back-references, inline flags, ``\\b``, ``{,n}``) gives ``None``: the page then sets no
pattern and the server's check alone decides, as it always does in the end. (``\\d`` and
``\\w`` match only ASCII in a browser and more in Python: the browser's check is a help for
the person typing, never the rule.) Pure.
"""

from __future__ import annotations

import re

__all__ = ["html_pattern"]

_SYNTAX = frozenset("^$\\.*+?()[]{}|")
_CLASS_ESCAPES = frozenset("dDwWsS")
_CONTROL_ESCAPES = frozenset("ntrfv")
# Characters the ``v`` flag wants escaped in a class (its syntax and reserved punctuators).
_CLASS_ESCAPED = frozenset("()[]{}/-\\|&!#%,:;<=>@`~^$.*+?")
_QUANTIFIER = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")


class _Untranslatable(Exception):
    pass


def html_pattern(pattern: str | None) -> str | None:
    """``pattern`` as a JavaScript (``v`` flag) pattern meaning the same, or ``None``."""
    if pattern is None:
        return None
    try:
        re.compile(pattern)
        return _Translator(pattern).translate()
    except (re.error, _Untranslatable):
        return None


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0
        self.out: list[str] = []

    def peek(self, ahead: int = 0) -> str:
        index = self.at + ahead
        return self.text[index] if index < len(self.text) else ""

    def translate(self) -> str:
        depth = 0
        atom = False  # whether a quantifier may follow
        while self.at < len(self.text):
            char = self.peek()
            if char == "\\":
                self.out.append(self._escape(in_class=False))
                atom = True
            elif char == "[":
                self.out.append(self._class())
                atom = True
            elif char == "(":
                if self.peek(1) == "?":
                    if self.peek(2) != ":":
                        raise _Untranslatable
                    self.out.append("(?:")
                    self.at += 3
                else:
                    self.out.append("(")
                    self.at += 1
                depth += 1
                atom = False
            elif char == ")":
                if depth == 0:
                    raise _Untranslatable
                depth -= 1
                self.out.append(")")
                self.at += 1
                atom = True
            elif char in "*+?{":
                if not atom:
                    raise _Untranslatable
                self._quantifier()
                atom = False
            elif char in "^$|":
                self.out.append(char)
                self.at += 1
                atom = False
            elif char in "]}":
                raise _Untranslatable  # a literal the u and v flags refuse unescaped
            else:  # "." and literals
                self.out.append(char)
                self.at += 1
                atom = True
        if depth:
            raise _Untranslatable
        return "".join(self.out)

    def _quantifier(self) -> None:
        char = self.peek()
        if char == "{":
            found = _QUANTIFIER.match(self.text, self.at)
            if found is None:
                raise _Untranslatable  # "{,n}" or a literal brace
            low, high = found.group(1), found.group(3)
            if high and int(high) < int(low):
                raise _Untranslatable
            self.out.append(found.group(0))
            self.at = found.end()
        else:
            self.out.append(char)
            self.at += 1
        if self.peek() == "?":  # lazy
            self.out.append("?")
            self.at += 1
        if self.peek() in ("*", "+", "?", "{"):
            raise _Untranslatable  # possessive or stacked

    def _escape(self, *, in_class: bool) -> str:
        escaped = self.peek(1)
        self.at += 2
        if escaped in _CLASS_ESCAPES or escaped in _CONTROL_ESCAPES:
            return "\\" + escaped
        if escaped in _SYNTAX or escaped == "/":
            return "\\" + escaped
        if escaped == "-":
            return "\\-" if in_class else "-"
        if escaped and not escaped.isalnum() and escaped.isascii() and escaped.isprintable():
            return self._literal_in_class(escaped) if in_class else _plain(escaped)
        raise _Untranslatable

    def _class(self) -> str:
        self.at += 1  # "["
        parts = ["["]
        if self.peek() == "^":
            parts.append("^")
            self.at += 1
        if self.peek() == "]":
            raise _Untranslatable  # Python's literal "]" first
        items = 0
        while True:
            char = self.peek()
            if char == "":
                raise _Untranslatable
            if char == "]":
                self.at += 1
                break
            if char == "[":
                raise _Untranslatable  # a nested set to Python's future, a syntax error to v
            first, text = self._class_item()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.at += 1
                last, end = self._class_item()
                if first is None or last is None or ord(last) < ord(first):
                    raise _Untranslatable  # a range from or to a class escape
                text = f"{text}-{end}"
            parts.append(text)
            items += 1
        if not items:
            raise _Untranslatable
        parts.append("]")
        return "".join(parts)

    def _class_item(self) -> tuple[str | None, str]:
        """The next item of a class: the character it stands for (``None`` for a class
        escape such as ``\\d``) and its JavaScript."""
        char = self.peek()
        if char == "\\":
            escaped = self.peek(1)
            text = self._escape(in_class=True)
            plain = escaped not in _CLASS_ESCAPES and escaped not in _CONTROL_ESCAPES
            return (escaped if plain else None), text
        self.at += 1
        return char, self._literal_in_class(char)

    @staticmethod
    def _literal_in_class(char: str) -> str:
        return "\\" + char if char in _CLASS_ESCAPED else char


def _plain(char: str) -> str:
    """A literal outside a class: punctuation the u and v flags accept as it is."""
    if char in _SYNTAX or char == "/":
        return "\\" + char
    return char
