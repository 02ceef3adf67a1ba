"""Seeded generators of sentences with planted personal data, and of ordinary sentences full of numbers.

The checksums (Luhn, IBAN mod 97, Chinese ID MOD 11-2) are computed here independently
of :mod:`modelyard.data.pii`, so the samples test the detector rather than mirror it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

FIRST = ["anna", "li", "mohammed", "maria", "john", "wei", "sofia", "lucas", "yuki", "olga", "pierre", "amara",
         "noah", "chen", "fatima", "jose", "emma", "ivan", "priya", "kofi"]
LAST = ["smith", "wang", "garcia", "muller", "rossi", "kim", "nguyen", "silva", "kowalski", "dubois", "zhang",
        "okafor", "jensen", "patel", "sato", "novak", "hughes", "moreau"]
DOMAINS = ["gmail.com", "example.com", "mail.example.co.uk", "outlook.com", "qq.com", "163.com", "company-name.org",
           "uni-heidelberg.de", "yahoo.fr", "proton.me", "research.lab.example.edu"]
WORDS = ["please", "contact", "the", "team", "about", "your", "order", "we", "received", "payment", "shipping",
         "thanks", "update", "account", "invoice", "meeting", "tomorrow", "delivery", "customer", "service",
         "report", "attached", "review", "issue", "ticket", "refund", "quality", "product", "store", "week"]

# Where a planted item goes: prefix + item + suffix.
TEMPLATES = [
    "{} ", "Contact me at {} for details.", "My {label} is {} and I live in Berlin.", "({})",
    "Reach out via {label}: {}, thanks!", "{label}:{}", "Please update {} in the system.",
    "\"{}\" was entered by the customer.", "Details — {} — were shared on Monday.", "Send it to <{}>.",
    "Customer wrote: my {label} {} has changed.", "{} is the {label} we have on file.",
]


@dataclass(frozen=True)
class Planted:
    """A sentence and the span of the personal data planted in it."""

    type: str
    text: str
    start: int
    end: int


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the Luhn check digit."""
    total = 0
    for i, char in enumerate(reversed(prefix)):
        d = int(char)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return prefix + str((10 - total % 10) % 10)


def luhn_ok(digits: str) -> bool:
    return luhn_complete(digits[:-1]) == digits


def email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first[0]}{last}", f"{first}_{last}",
                        f"{first}+{rng.choice(WORDS)}", str(rng.randint(10_000, 9_999_999_999)),
                        f"{first}.{last}{rng.randint(1970, 2005)}"])
    if rng.random() < 0.2:
        local = local.capitalize()
    return f"{local}@{rng.choice(DOMAINS)}"


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def phone(rng: random.Random) -> str:
    area, exchange, line = rng.randint(201, 989), _digits(rng, 3), _digits(rng, 4)
    uk_area, uk_local = rng.choice(["20", "121", "131", "161", "113"]), None
    uk_local = _digits(rng, 10 - len(uk_area))
    uk = f"{uk_area} {uk_local[:len(uk_local) - 4]} {uk_local[-4:]}"
    cn = f"1{rng.choice('3456789')}{_digits(rng, 1)}"
    cn_rest = _digits(rng, 8)
    fr = " ".join(_digits(rng, 2) for _ in range(4))
    forms = [
        f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"{area}.{exchange}.{line}",
        f"+1 {area} {exchange} {line}", f"+1-{area}-{exchange}-{line}", f"+1 ({area}) {exchange}-{line}",
        f"1-800-{exchange}-{line}", f"+1{area}{exchange}{line}",
        f"+44 {uk}", f"0{uk}", f"07{_digits(rng, 3)} {_digits(rng, 6)}", f"+44 7{_digits(rng, 3)} {_digits(rng, 6)}",
        f"+86 {cn} {cn_rest[:4]} {cn_rest[4:]}", f"{cn}{cn_rest}", f"{cn}-{cn_rest[:4]}-{cn_rest[4:]}",
        f"+33 {rng.randint(1, 9)} {fr}", f"0{rng.randint(1, 9)} {fr}", f"0{rng.randint(1, 9)}.{fr.replace(' ', '.')}",
        f"+49 30 {_digits(rng, 8)}", f"030 {_digits(rng, 8)}", f"+91 9{_digits(rng, 4)} {_digits(rng, 5)}",
        f"+81 3-{_digits(rng, 4)}-{_digits(rng, 4)}", f"+61 2 {_digits(rng, 4)} {_digits(rng, 4)}",
    ]
    return rng.choice(forms)


CARD_PREFIXES = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
                 ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("3589", 16), ("62", 16), ("62", 19), ("36", 14)]


def card(rng: random.Random) -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    number = luhn_complete(prefix + _digits(rng, length - len(prefix) - 1))
    style = rng.random()
    if style < 0.4 or length not in (15, 16):
        return number
    sep = " " if style < 0.75 else "-"
    if length == 15:
        return sep.join([number[:4], number[4:10], number[10:]])
    return sep.join(number[i:i + 4] for i in range(0, 16, 4))


def ip(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return str(ipaddress.IPv4Address(rng.getrandbits(32)))
    address = ipaddress.IPv6Address(rng.getrandbits(128))
    if rng.random() < 0.4:  # with a run of zero groups, so that it compresses with ::
        groups = address.exploded.split(":")
        zero_from = rng.randint(1, 5)
        groups[zero_from:zero_from + rng.randint(2, 3)] = ["0000"] * len(groups[zero_from:zero_from + 3])
        address = ipaddress.IPv6Address(":".join(groups[:8]))
    return address.compressed if rng.random() < 0.7 else address.exploded


# Countries and BBAN shapes (a: capital letter, n: digit, c: either).
IBAN_SHAPES = {"DE": "n" * 18, "GB": "aaaa" + "n" * 14, "FR": "n" * 10 + "c" * 11 + "nn", "NL": "aaaa" + "n" * 10,
               "ES": "n" * 20, "IT": "a" + "n" * 10 + "c" * 12, "CH": "n" * 5 + "c" * 12, "BE": "n" * 12,
               "PL": "n" * 24, "SE": "n" * 20, "NO": "n" * 11, "AT": "n" * 16, "IE": "aaaa" + "n" * 14,
               "PT": "n" * 21, "DK": "n" * 14, "FI": "n" * 14, "SA": "nn" + "c" * 18, "TR": "n" * 5 + "0" + "c" * 16}


def iban(rng: random.Random) -> str:
    country, shape = rng.choice(sorted(IBAN_SHAPES.items()))
    alphabet = {"a": string.ascii_uppercase, "n": string.digits, "c": string.ascii_uppercase + string.digits}
    bban = "".join(rng.choice(alphabet.get(kind, kind)) for kind in shape)
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    compact = f"{country}{98 - numeric % 97:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


CN_PROVINCES = [11, 12, 13, 31, 32, 33, 37, 41, 44, 50, 51, 61, 65]


def chinese_id(rng: random.Random) -> str:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 70 * 365))
    body = f"{rng.choice(CN_PROVINCES)}{_digits(rng, 4)}{born:%Y%m%d}{_digits(rng, 3)}"
    weights = [pow(2, 17 - i, 11) for i in range(17)]
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]


def ssn(rng: random.Random) -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    sep = "-" if rng.random() < 0.85 else " "
    return f"{area:03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def national_id(rng: random.Random) -> str:
    return chinese_id(rng) if rng.random() < 0.5 else ssn(rng)


GENERATORS: dict[str, tuple[Callable[[random.Random], str], str]] = {
    "email": (email, "email"), "phone": (phone, "phone number"), "card": (card, "card number"),
    "ip": (ip, "IP address"), "iban": (iban, "IBAN"), "national_id": (national_id, "ID number"),
}


def planted_samples(n_per_type: int, seed: int = 0) -> list[Planted]:
    """``n_per_type`` sentences per PII type, each with one planted item and some filler words."""
    rng = random.Random(seed)
    out = []
    for kind, (make, label) in GENERATORS.items():
        for _ in range(n_per_type):
            item = make(rng)
            template = rng.choice(TEMPLATES)
            before, after = template.split("{}")
            before = before.replace("{label}", label)
            after = after.replace("{label}", label)
            lead = " ".join(rng.choices(WORDS, k=rng.randint(0, 6)))
            before = (lead + " " + before) if lead else before
            text = before + item + after
            out.append(Planted(kind, text, len(before), len(before) + len(item)))
    return out


def _random_16_failing_luhn(rng: random.Random) -> str:
    number = _digits(rng, 16)
    if luhn_ok(number):
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return number


def _grouped(digits: str) -> str:
    return " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))


NUMBER_MAKERS: list[Callable[[random.Random], str]] = [
    lambda r: f"The price is ${r.randint(1, 9999):,}.{r.randint(0, 99):02d} including tax.",
    lambda r: f"It costs {r.randint(1, 500)}.{r.randint(0, 99):02d} EUR, down from {r.randint(1, 900)} EUR.",
    lambda r: f"Invoice dated {r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} is overdue.",
    lambda r: f"Delivered on {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1990, 2030)} at the depot.",
    lambda r: f"Meeting on {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.{r.randint(2000, 2030)} "
              f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}.",
    lambda r: f"Founded in {r.randint(1800, 2024)}, the company moved in {r.randint(1900, 2024)}.",
    lambda r: f"Your order #{r.randint(10_000, 99_999_999)} has shipped.",
    lambda r: f"Order No. {r.randint(2015, 2025)}-{r.randint(0, 999_999):06d} was cancelled.",
    lambda r: f"Reference {r.choice('ABCXYZ')}-{r.randint(1_000_000, 9_999_999)} in your reply.",
    lambda r: f"Upgrade Python to {r.randint(2, 3)}.{r.randint(0, 13)}.{r.randint(0, 20)} before release "
              f"v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 9)}.",
    lambda r: f"We need {r.randint(2, 5000):,} units and {r.randint(1, 99)} kg of flour, "
              f"{r.randint(1, 12)} x {r.choice([250, 330, 500])} ml.",
    lambda r: f"The train leaves at {r.randint(0, 23):02d}:{r.randint(0, 59):02d} and arrives "
              f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.",
    lambda r: f"Open {r.randint(6, 11)}:00-{r.randint(12, 22)}:30 on weekdays.",
    lambda r: f"Conversion went up {r.randint(0, 99)}.{r.randint(0, 9)}% while churn fell {r.randint(1, 20)}%.",
    lambda r: f"Ship to ZIP {r.randint(10_000, 99_999)} or {r.randint(10_000, 99_999)}-{r.randint(1000, 9999)}.",
    lambda r: f"Random id {_random_16_failing_luhn(r)} from the legacy system.",
    lambda r: f"Batch {_grouped(_random_16_failing_luhn(r))} was rejected.",
    lambda r: f"The score was {r.randint(0, 7)}-{r.randint(0, 7)} after {r.randint(1, 120)} minutes.",
    lambda r: f"Population grew to {r.randint(1, 999):,},{r.randint(0, 999):03d},{r.randint(0, 999):03d} people.",
    lambda r: f"Room {r.randint(100, 999)}, floor {r.randint(1, 40)}, building {r.randint(1, 12)}.",
    lambda r: f"Coordinates {r.uniform(-90, 90):.4f}, {r.uniform(-180, 180):.4f} mark the spot.",
    lambda r: f"The GPU (RTX {r.choice([3060, 3090, 4070, 4090])}) ran {r.randint(1, 72)}h {r.randint(0, 59)}m.",
    lambda r: f"Page {r.randint(1, 900)} of {r.randint(900, 2000)}, section {r.randint(1, 20)}.{r.randint(1, 20)}.",
    lambda r: f"It weighs {r.randint(1, 100)}.{r.randint(0, 999):03d} kg at {r.randint(-30, 45)} °C.",
    lambda r: f"Temperature range {r.randint(-20, 10)} to {r.randint(11, 40)}, humidity {r.randint(10, 99)}%.",
    # Look-alikes: long order numbers, ISBNs, UUIDs, timestamps, hashes, space-grouped amounts, ratios.
    lambda r: f"Tracking number {r.randint(10**9, 10**12 - 1)} updated.",
    lambda r: f"ISBN 978-{r.randint(0, 9)}-{r.randint(10, 99)}-{r.randint(100_000, 999_999)}-{r.randint(0, 9)} "
              f"is out of print.",
    lambda r: f"Request {r.getrandbits(32):08x}-{r.getrandbits(16):04x}-{r.getrandbits(16):04x}-"
              f"{r.getrandbits(16):04x}-{r.getrandbits(48):012x} failed.",
    lambda r: f"Logged at {r.randint(2000, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
              f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z by the server.",
    lambda r: f"Commit {r.getrandbits(160):040x} fixed it.",
    lambda r: f"Total: {r.randint(1, 999)} {r.randint(0, 999):03d} {r.randint(0, 999):03d},{r.randint(0, 99):02d} EUR.",
    lambda r: f"Blood pressure {r.randint(90, 160)}/{r.randint(60, 100)}, pulse {r.randint(50, 120)}.",
    lambda r: f"Lines {r.randint(1, 500)}-{r.randint(501, 999)} and steps 1, 2, 3, {r.randint(4, 99)}.",
    lambda r: f"Build {r.randint(1000, 99999)} of {r.randint(2019, 2025)}.{r.randint(1, 12):02d} passed "
              f"{r.randint(100, 5000)} tests.",
]


def number_sentences(n: int, seed: int = 1) -> list[str]:
    """``n`` ordinary sentences with prices, dates, years, order numbers, versions, times, … and no PII."""
    rng = random.Random(seed)
    return [" ".join([*rng.choices(WORDS, k=rng.randint(0, 5)), rng.choice(NUMBER_MAKERS)(rng)]).strip()
            for _ in range(n)]
