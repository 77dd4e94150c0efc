"""Personal data masked in stored transcripts (seed §9), before they reach the store. Pure functions.

Rules (each can be switched on or off with ``SENSEOPS_REDACTION_RULES``; all are on by default):

============  ==================================================================  ===========
rule          matches                                                              mask
============  ==================================================================  ===========
email         ``name@example.com``                                                 ``[EMAIL]``
id_card       18-digit PRC resident ID (date and ISO 7064 check digit verified)    ``[ID]``
bank_card     13–19 digits, optionally grouped by spaces or dashes, Luhn-valid     ``[CARD]``
phone         PRC mobile (``+86`` optional), PRC landline ``0xx-xxxxxxxx``,
              international ``+<country> …`` (8–15 digits)                          ``[PHONE]``
============  ==================================================================  ===========

Rules run in that order, so an ID number is never half-masked as a phone number. The text sent to the
client is not changed (the streamer sees what they said); only what is stored is masked. Audio cannot be
masked — that is what retention and ``delete-anchor`` are for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_card_valid(number: str) -> bool:
    """ISO 7064 MOD 11-2 check digit of an 18-character PRC resident ID."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum bank card numbers carry."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class Rule:
    """One kind of personal data: a pattern, an optional validator of the match, and its mask."""

    name: str
    pattern: re.Pattern[str]
    mask: str
    valid: Callable[[str], bool] = lambda _match: True


RULES: tuple[Rule, ...] = (
    Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[EMAIL]"),
    Rule(
        "id_card",
        re.compile(r"(?<![0-9])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9])"),
        "[ID]",
        id_card_valid,
    ),
    Rule(
        "bank_card",
        re.compile(r"(?<![0-9+])\d(?:[ -]?\d){12,18}(?![0-9])"),
        "[CARD]",
        lambda m: 13 <= len(_digits(m)) <= 19 and luhn_valid(_digits(m)),
    ),
    Rule(
        "phone",
        re.compile(
            r"(?:(?<![0-9+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![0-9]))"  # PRC mobile
            r"|(?:(?<![0-9])0\d{2,3}-\d{7,8}(?![0-9]))"  # PRC landline with area code
            r"|(?:\+\d{1,3}(?:[ -]?\(?\d{1,4}\)?){2,5}(?![0-9]))"  # international, +country …
        ),
        "[PHONE]",
        lambda m: 8 <= len(_digits(m)) <= 15 or not m.startswith("+"),
    ),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


def select_rules(names: Iterable[str]) -> tuple[Rule, ...]:
    """The rules named (in their fixed order); ``none`` alone disables redaction. ValueError names typos."""
    wanted = {n.strip() for n in names if n.strip()}
    if wanted == {"none"}:
        return ()
    unknown = sorted(wanted - set(RULE_NAMES))
    if unknown:
        raise ValueError(f"unknown redaction rule(s) {', '.join(unknown)}; use some of {', '.join(RULE_NAMES)} or none")
    return tuple(rule for rule in RULES if rule.name in wanted)


def redact(text: str, rules: Iterable[Rule] = RULES) -> tuple[str, dict[str, int]]:
    """``text`` with personal data masked, and how many matches each rule masked."""
    counts: dict[str, int] = {}
    for rule in rules:

        def replace(match: re.Match[str], rule: Rule = rule) -> str:
            if not rule.valid(match.group(0)):
                return match.group(0)
            counts[rule.name] = counts.get(rule.name, 0) + 1
            return rule.mask

        text = rule.pattern.sub(replace, text)
    return text, counts
