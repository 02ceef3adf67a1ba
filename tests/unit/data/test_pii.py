"""PII detection: hand cases per type, checksums, overlaps, masking, scanning, and measured recall / false positives."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from modelyard.core.errors import ConfigError
from modelyard.data.pii import (
    PII_TYPES,
    PiiMatch,
    chinese_id_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    mask_pii,
    scan_texts,
)
from tests.unit.data.pii_samples import number_sentences, planted_samples


def found(text: str, types: tuple[str, ...] | str = PII_TYPES) -> list[tuple[str, str]]:
    return [(m.type, m.text) for m in find_pii(text, types)]


@pytest.mark.parametrize(("text", "expected"), [
    ("write to jane.doe+news@mail.example.co.uk today", [("email", "jane.doe+news@mail.example.co.uk")]),
    ("(at 12345678@qq.com.)", [("email", "12345678@qq.com")]),
    ("call (555) 123-4567 now", [("phone", "(555) 123-4567")]),
    ("call 555-123-4567.", [("phone", "555-123-4567")]),
    ("office +44 20 7946 0958, mobile +86 138 0013 8000",
     [("phone", "+44 20 7946 0958"), ("phone", "+86 138 0013 8000")]),
    ("toll free 1-800-555-0199", [("phone", "1-800-555-0199")]),
    ("UK 020 7946 0958 or FR 01 23 45 67 89", [("phone", "020 7946 0958"), ("phone", "01 23 45 67 89")]),
    ("cn 13800138000", [("phone", "13800138000")]),
    ("E.164 +14155552671", [("phone", "+14155552671")]),
    ("visa 4111 1111 1111 1111 ok", [("card", "4111 1111 1111 1111")]),
    ("amex 3782-822463-10005", [("card", "3782-822463-10005")]),
    ("hosts 10.0.0.1 and 2001:db8::8a2e:370:7334.", [("ip", "10.0.0.1"), ("ip", "2001:db8::8a2e:370:7334")]),
    ("IBAN DE89 3704 0044 0532 0130 00 please", [("iban", "DE89 3704 0044 0532 0130 00")]),
    ("GB82WEST12345698765432", [("iban", "GB82WEST12345698765432")]),
    ("ID 11010519491231002X", [("national_id", "11010519491231002X")]),
    ("SSN 123-45-6789", [("national_id", "123-45-6789")]),
])
def test_each_type_is_found_with_its_exact_span(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize("text", [
    "4111 1111 1111 1112",            # Luhn fails
    "1234 5678 9012 3452",            # Luhn passes but issuer digit 1 is no payment card
    "ip 256.1.1.1 and 1.2.3",         # octet > 255; three parts (a version)
    "at 12:30:45, MAC 00:1A:2B:3C:4D:5E",
    "DE89 3704 0044 0532 0130 01",    # mod 97 fails
    "11010519491231002Y 110105194912310021",  # check digit wrong
    "110105209912310028",             # born in the future (2099)
    "000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000",  # invalid SSN areas, group, serial
    "Python 3.11.7, price $1,299.99, 2023-10-15, 14:30, 12.5%, ZIP 90210-1234",
    "batch 7333 0404 8311 1651",     # four groups of a longer number hold no phone
])
def test_look_alikes_are_not_pii(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("GB82WEST12345698765432") and not iban_valid("GB82WEST12345698765433")
    assert not iban_valid("GB82WEST1234569876543")  # one character short for GB
    assert chinese_id_valid("11010519491231002X") and chinese_id_valid("11010519491231002x")
    assert not chinese_id_valid("99010519491231002X")  # no province 99
    assert not chinese_id_valid("11010519490231002X")  # 31 February


def test_overlaps_go_to_the_checksummed_type() -> None:
    # The trunk-0 phone pattern alone would take part of this IBAN's digits.
    text = "pay GB82 WEST 1234 5698 7654 32 now"
    assert found(text) == [("iban", "GB82 WEST 1234 5698 7654 32")]
    assert find_pii(text, ["phone"]) == []
    # An 18-digit resident ID is also a Luhn-valid card number here; the ID wins.
    assert luhn_valid("118709195603051634") and found("id 118709195603051634") == [
        ("national_id", "118709195603051634")]
    # Digits inside an e-mail address belong to the address.
    assert found("5551234567@example.com") == [("email", "5551234567@example.com")]


def test_match_positions_and_type_filter() -> None:
    text = "a@b.io 10.0.0.1"
    assert find_pii(text) == [PiiMatch("email", 0, 6, "a@b.io"), PiiMatch("ip", 7, 15, "10.0.0.1")]
    assert find_pii(text, "ip") == [PiiMatch("ip", 7, 15, "10.0.0.1")]
    assert find_pii(text, []) == []


def test_unknown_type_names_the_bad_one_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        find_pii("x", ["email", "passport"])
    message = str(info.value)
    assert "'passport'" in message and all(t in message for t in PII_TYPES)
    with pytest.raises(ConfigError, match="action"):
        scan_texts(["x"], action="redact")  # type: ignore[arg-type]


def test_mask_pii_typed_masks_and_counts() -> None:
    text = "Mail bob@x.org, call +1 (555) 123-4567 or 555-123-4567; card 4111111111111111; IBAN DE89370400440532013000"
    masked, counts = mask_pii(text)
    assert masked == "Mail <EMAIL>, call <PHONE> or <PHONE>; card <CARD>; IBAN <IBAN>"
    assert counts == Counter({"phone": 2, "email": 1, "card": 1, "iban": 1})
    assert mask_pii("nothing here 42") == ("nothing here 42", Counter())
    assert mask_pii("ssn 123-45-6789, ip ::ffff:10.0.0.1")[0] == "ssn <NATIONAL_ID>, ip <IP>"


@pytest.mark.parametrize("action", ["mask", "drop", "report"])
def test_scan_texts_actions(action: str) -> None:
    texts = ["hi bob@x.org", None, "no pii", "call 555-123-4567 or 555-123-4568", ""]
    result = scan_texts(texts, action=action)  # type: ignore[arg-type]
    assert result.has_pii.tolist() == [True, False, False, True, False]
    assert result.counts == Counter({"email": 1, "phone": 2}) and result.rows_with_pii == 2
    if action == "mask":
        assert result.texts == ["hi <EMAIL>", None, "no pii", "call <PHONE> or <PHONE>", ""]
    else:
        assert result.texts == texts
    assert result.keep.tolist() == ([False, True, True, False, True] if action == "drop" else [True] * 5)
    assert result.examples == ["hi <EMAIL>", "call <PHONE> or <PHONE>"]
    summary = result.to_dict()
    assert summary["counts"] == {"email": 1, "phone": 2} and "bob@x.org" not in str(summary)


def test_report_examples_are_masked_and_bounded() -> None:
    texts = [f"{'word ' * 40}user{i}@example.com {'tail ' * 40}" for i in range(20)]
    result = scan_texts(texts, ["email"], action="report", max_examples=3)
    assert len(result.examples) == 3
    assert all("<EMAIL>" in e and "@" not in e and len(e) <= 3 * 60 + 2 for e in result.examples)


def test_recall_on_planted_pii_per_type() -> None:
    # 400 sentences per type x 6 types = 2,400 planted items with valid checksums (tests/unit/data/pii_samples.py).
    samples = planted_samples(400, seed=0)
    hits, totals = Counter(), Counter()
    for s in samples:
        totals[s.type] += 1
        hits[s.type] += any(m.type == s.type and (m.start, m.end) == (s.start, s.end) for m in find_pii(s.text))
    recall = {t: hits[t] / totals[t] for t in PII_TYPES}
    # Goal from the data-stage issue: recall >= 0.98 per type. Measured on this seed: 1.0 for every type
    # (exact span and type required).
    assert all(r >= 0.98 for r in recall.values()), recall
    assert recall == dict.fromkeys(PII_TYPES, 1.0)


def test_false_positive_rate_on_ordinary_sentences_with_numbers() -> None:
    # 3,000 sentences with prices, dates, years, order and tracking numbers, versions, quantities, times,
    # percentages, ZIP codes, ISBNs, UUIDs, hashes and 16-digit numbers failing Luhn.
    sentences = number_sentences(3000, seed=1)
    flagged = [s for s in sentences if find_pii(s)]
    rate = len(flagged) / len(sentences)
    # Goal from the data-stage issue: <= 1%. Measured on this seed: 1 / 3000 (0.03%): an 11-digit tracking
    # number starting "17", which has the shape of a Chinese mobile number.
    assert rate <= 0.01, flagged[:10]
    assert len(flagged) == 1 and found(flagged[0]) == [("phone", "17461976322")]


def test_scan_of_many_rows_matches_row_by_row() -> None:
    rng = np.random.default_rng(0)
    planted = [s.text for s in planted_samples(30, seed=3)]
    plain = number_sentences(200, seed=4)
    texts = [planted[i] if i < len(planted) else plain[i - len(planted)] for i in rng.permutation(len(planted) +
                                                                                               len(plain))]
    result = scan_texts(texts)
    assert result.texts == [mask_pii(t)[0] for t in texts]
    assert result.rows_with_pii == sum(bool(find_pii(t)) for t in texts)
