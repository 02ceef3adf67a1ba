"""Personal data (PII) in text: find it, mask it with typed tokens, or flag the rows.

Types and what counts as one (a pattern, then a check that rules out look-alikes):

============  ==================================================================  ===============
type          forms                                                               check
============  ==================================================================  ===============
email         ``local@domain.tld``                                                pattern only
phone         ``+CC …`` (8–15 digits, E.164), US ``(555) 123-4567`` /              digit count
              ``555-123-4567``, national numbers with a trunk ``0``
              (``020 7946 0958``, ``01 23 45 67 89``), Chinese mobiles
              (``138 0013 8000``)
card          13–19 digits, plain or in groups of 4 (Amex 4-6-5), issuer digit     Luhn
              2–6 (ISO/IEC 7812 banking and merchandising)
ip            IPv4 (each octet ≤ 255), IPv6                                       ``ipaddress``
iban          country code, check digits, BBAN, plain or in groups of 4            length of the
                                                                                  country, mod 97
national_id   Chinese resident ID (18 characters), US SSN ``AAA-GG-SSSS``          ISO 7064 MOD
                                                                                  11-2 and birth
                                                                                  date; SSN rules
============  ==================================================================  ===============

Where candidates overlap, the more specific type wins: e-mail, then the checksummed types
(national ID, IBAN, card), then IP, then phone; within one type, the longer match.
Patterns are ASCII (``re.ASCII``); run NFKC first (the stage's cleaning does) so that
full-width digits count.

Masks are ``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<IP>``, ``<IBAN>``, ``<NATIONAL_ID>``.
Reports carry masked examples only, never the personal data itself.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelyard.core.errors import ConfigError

PII_TYPES: tuple[str, ...] = ("email", "phone", "card", "ip", "iban", "national_id")
MASKS: dict[str, str] = {t: f"<{t.upper()}>" for t in PII_TYPES}
ACTIONS: tuple[str, ...] = ("mask", "drop", "report")
# Overlapping candidates: the lower rank wins.
_RANK = {"email": 0, "national_id": 1, "iban": 2, "card": 3, "ip": 4, "phone": 5}
_EXAMPLE_CONTEXT = 60  # characters kept on each side of the first mask in a report example

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# First two digits of a Chinese resident ID: province-level divisions (71 Taiwan, 81 Hong Kong,
# 82 Macau, 83 residence permits of Taiwan residents).
_CN_PROVINCES = frozenset({11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
                           50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83})
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # 2^(17 - i) mod 11
_CN_CHECK = "10X98765432"


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its type and ``text[start:end]``."""

    type: str
    start: int
    end: int
    text: str


# --- checks ---------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """True if the digit string passes the Luhn (mod 10) check of payment cards."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """True if an IBAN without spaces has its country's length and passes ISO 7064 mod 97-10."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum() or not compact.isascii():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def chinese_id_valid(number: str) -> bool:
    """True if an 18-character Chinese resident ID has a known province, a past birth date and its check digit."""
    if len(number) != 18 or not number[:17].isdigit() or int(number[:2]) not in _CN_PROVINCES:
        return False
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born.year < 1900 or born > dt.date.today():
        return False
    check = _CN_CHECK[sum(int(c) * w for c, w in zip(number[:17], _CN_WEIGHTS)) % 11]
    return number[17].upper() == check


# --- finders: each yields (start, end) spans of one type ------------------------------------------

_FLAGS = re.ASCII
# Not glued to more digit groups on either side ("7333 0404 8311 1651" holds no phone number).
_ALONE_BEFORE = r"(?<!\d[ .-])"
_ALONE_AFTER = r"(?![ .-]\d)"
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-])", _FLAGS)
_PHONES: tuple[tuple[re.Pattern[str], int, int], ...] = (
    # (pattern, fewest digits, most digits)
    # International: +CC then groups (an optional "(0)" or area code in parentheses), or E.164 in one run.
    (re.compile(r"(?<![\w+])\+[1-9]\d{0,3}(?:[ .-]?\(\d{1,4}\))?[ .-]?\d{1,8}(?:[ .-]\d{1,8}){0,6}"
                r"(?!\d)" + _ALONE_AFTER, _FLAGS), 8, 15),
    # North America: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199.
    (re.compile(_ALONE_BEFORE + r"(?<![\w+.-])(?:1[ .-]?)?(?:\([2-9]\d\d\)[ .-]?|[2-9]\d\d[ .-])\d{3}[ .-]\d{4}"
                r"(?![\w-])" + _ALONE_AFTER, _FLAGS), 10, 11),
    # Chinese mobiles: 13800138000, 138 0013 8000, 138-0013-8000.
    (re.compile(_ALONE_BEFORE + r"(?<![\w+.-])1[3-9]\d(?:[ -]?\d{4}){2}(?![\w-])" + _ALONE_AFTER, _FLAGS), 11, 11),
    # National numbers with a trunk 0: 020 7946 0958, (020) 7946 0958, 07700 900123, 01 23 45 67 89, 030 12345678.
    (re.compile(_ALONE_BEFORE + r"(?<![\w+.-])(?:\(0\d{1,4}\)[ ]?\d{3,8}(?:[ -]\d{3,4})?"
                r"|0[1-9]\d{0,4}([ .-]?)\d{2,8}(?:\1\d{2,8}){0,3})(?![\w-])" + _ALONE_AFTER, _FLAGS), 10, 12),
)
# Cards: one run of digits, 4-4-4-x(-x), or Amex / Diners 4-6-5 / 4-6-4, one separator throughout.
_CARD = re.compile(
    _ALONE_BEFORE + r"(?<![\w-])(?:\d{13,19}|\d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?|\d{4}([ -])\d{6}\2\d{4,5})"
    r"(?![\w-])" + _ALONE_AFTER, _FLAGS)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)", _FLAGS)
# Not inside a longer run of hex groups (but "ip:fe80::1" is fine: "p" is no hex digit).
_IPV6 = re.compile(r"(?<![\w.])(?<![0-9A-Fa-f:]:)(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
                   r"(?![\w:])", _FLAGS)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,31}", _FLAGS)
_CHINESE_ID = re.compile(r"(?<![A-Za-z0-9])[1-8]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}"
                         r"[0-9Xx](?![A-Za-z0-9])", _FLAGS)
# SSN: area not 000, 666 or 9xx; group not 00; serial not 0000; one separator used twice.
_SSN = re.compile(_ALONE_BEFORE + r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])"
                  + _ALONE_AFTER, _FLAGS)
_DIGIT = re.compile(r"\d", _FLAGS)


def _find_email(text: str) -> Iterator[tuple[int, int]]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield m.span()


def _find_phone(text: str) -> Iterator[tuple[int, int]]:
    for pattern, fewest, most in _PHONES:
        for m in pattern.finditer(text):
            if fewest <= _count_digits(m.group()) <= most:
                yield m.span()


def _count_digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _find_card(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits):
            yield m.span()


def _find_ip(text: str) -> Iterator[tuple[int, int]]:
    if "." in text:
        for m in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            yield m.span()
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            candidate = m.group()
            if sum(1 for part in re.split(r"[:.]", candidate) if part) < 2:
                continue  # "::" or "::1"-like fragments of code and times
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield m.span()


def _find_iban(text: str) -> Iterator[tuple[int, int]]:
    position = 0
    while m := _IBAN.search(text, position):
        span = _iban_span(text, m.start(), m.end())
        position = span[1] if span else m.start() + 1
        if span:
            yield span


def _iban_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The IBAN at ``start`` cut to its country's length, if it ends at a word boundary and checks out."""
    length = IBAN_LENGTHS.get(text[start:start + 2])
    if length is None:
        return None
    kept, cut = 0, start
    while cut < end and kept < length:
        if text[cut] != " ":
            kept += 1
        cut += 1
    if kept < length or (cut < len(text) and text[cut].isalnum()):
        return None
    return (start, cut) if iban_valid(text[start:cut].replace(" ", "")) else None


def _find_national_id(text: str) -> Iterator[tuple[int, int]]:
    for m in _CHINESE_ID.finditer(text):
        if chinese_id_valid(m.group()):
            yield m.span()
    for m in _SSN.finditer(text):
        yield m.span()


_FINDERS: dict[str, Callable[[str], Iterator[tuple[int, int]]]] = {
    "email": _find_email, "phone": _find_phone, "card": _find_card, "ip": _find_ip, "iban": _find_iban,
    "national_id": _find_national_id,
}
_NEEDS_DIGIT = frozenset({"phone", "card", "iban", "national_id"})


# --- public API -----------------------------------------------------------------------------------


def check_types(types: Iterable[str] | str) -> tuple[str, ...]:
    """The requested PII types as a tuple, in :data:`PII_TYPES` order.

    Raises:
        ConfigError: an unknown type name (naming it and the known ones).
    """
    wanted = (types,) if isinstance(types, str) else tuple(types)
    unknown = [t for t in wanted if t not in _FINDERS]
    if unknown:
        raise ConfigError(f"unknown PII type {unknown[0]!r}", where="pii.types",
                          hint=f"known types: {', '.join(PII_TYPES)}")
    return tuple(t for t in PII_TYPES if t in wanted)


def find_pii(text: str, types: Iterable[str] | str = PII_TYPES) -> list[PiiMatch]:
    """Personal data in ``text``, without overlaps, in order of position.

    Args:
        text: the text to scan.
        types: PII types to look for (see :data:`PII_TYPES`).

    Raises:
        ConfigError: an unknown type name.

    Example:
        >>> [(m.type, m.text) for m in find_pii("mail bob@example.com or call +44 20 7946 0958")]
        [('email', 'bob@example.com'), ('phone', '+44 20 7946 0958')]
    """
    return _find(text, check_types(types))


def _find(text: str, types: tuple[str, ...]) -> list[PiiMatch]:
    has_digit = _DIGIT.search(text) is not None
    candidates = [(_RANK[kind], -(end - start), start, end, kind)
                  for kind in types if has_digit or kind not in _NEEDS_DIGIT
                  for start, end in _FINDERS[kind](text)]
    if not candidates:
        return []
    candidates.sort()
    chosen: list[tuple[int, int, str]] = []
    for _, _, start, end, kind in candidates:
        if all(end <= s or start >= e for s, e, _ in chosen):
            chosen.append((start, end, kind))
    chosen.sort()
    return [PiiMatch(type=kind, start=start, end=end, text=text[start:end]) for start, end, kind in chosen]


def mask_pii(text: str, types: Iterable[str] | str = PII_TYPES) -> tuple[str, Counter[str]]:
    """``text`` with each piece of personal data replaced by its typed mask, and the counts by type.

    Example:
        >>> mask_pii("card 4111 1111 1111 1111, ip 10.0.0.1")
        ('card <CARD>, ip <IP>', Counter({'card': 1, 'ip': 1}))
    """
    return _mask(text, _find(text, check_types(types)))


def _mask(text: str, matches: list[PiiMatch]) -> tuple[str, Counter[str]]:
    parts, position = [], 0
    for m in matches:
        parts += [text[position:m.start], MASKS[m.type]]
        position = m.end
    parts.append(text[position:])
    return "".join(parts), Counter(m.type for m in matches)


@dataclass(frozen=True)
class PiiResult:
    """What :func:`scan_texts` found and did.

    Attributes:
        action: ``mask``, ``drop`` or ``report``.
        texts: the masked texts for ``mask``; the texts unchanged for ``drop`` and ``report``.
        has_pii: (N,) bool, True on rows with personal data.
        keep: (N,) bool, False on the rows to drop (only with ``drop``; all True otherwise).
        counts: matches by type.
        examples: up to ``max_examples`` masked excerpts (never the personal data itself).
    """

    action: str
    texts: list[str | None]
    has_pii: np.ndarray
    keep: np.ndarray
    counts: Counter[str]
    examples: list[str]

    @property
    def rows_with_pii(self) -> int:
        """Rows with at least one match."""
        return int(self.has_pii.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON summary for the data-quality report (no texts, no personal data)."""
        return {"action": self.action, "rows": len(self.has_pii), "rows_with_pii": self.rows_with_pii,
                "counts": {t: int(self.counts.get(t, 0)) for t in PII_TYPES if t in self.counts},
                "examples": list(self.examples)}


def scan_texts(texts: Iterable[str | None], types: Iterable[str] | str = PII_TYPES,
               action: Literal["mask", "drop", "report"] = "mask", *, max_examples: int = 5) -> PiiResult:
    """Scan many texts: mask the personal data, mark rows with it for dropping, or just count.

    Missing values (None, NaN, anything not a string) are passed through and never hold PII.

    Args:
        texts: the texts.
        types: PII types to look for.
        action: ``mask`` (replace with typed masks), ``drop`` (``keep`` is False on rows with
            PII), or ``report`` (count only).
        max_examples: masked excerpts to keep for the report.

    Raises:
        ConfigError: an unknown type or action.
    """
    wanted = check_types(types)
    if action not in ACTIONS:
        raise ConfigError(f"unknown PII action {action!r}", where="pii.action", hint=f"known: {', '.join(ACTIONS)}")
    out: list[str | None] = []
    flags: list[bool] = []
    counts: Counter[str] = Counter()
    examples: list[str] = []
    for text in texts:
        matches = _find(text, wanted) if isinstance(text, str) and text else []
        flags.append(bool(matches))
        if not matches or not isinstance(text, str):
            out.append(text)
            continue
        masked, found = _mask(text, matches)
        counts.update(found)
        out.append(masked if action == "mask" else text)
        if len(examples) < max_examples:
            examples.append(_excerpt(masked, matches[0].start))
    has_pii = np.array(flags, dtype=bool)
    keep = ~has_pii if action == "drop" else np.ones(len(has_pii), dtype=bool)
    return PiiResult(action=action, texts=out, has_pii=has_pii, keep=keep, counts=counts, examples=examples)


def _excerpt(masked: str, first_mask: int) -> str:
    """Up to ``_EXAMPLE_CONTEXT`` characters each side of the first mask (its position is the same in ``masked``)."""
    lo, hi = max(0, first_mask - _EXAMPLE_CONTEXT), min(len(masked), first_mask + 2 * _EXAMPLE_CONTEXT)
    return ("…" if lo else "") + masked[lo:hi] + ("…" if hi < len(masked) else "")
