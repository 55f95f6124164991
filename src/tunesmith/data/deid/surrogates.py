"""Consistent fake values ("surrogates") for the identifiers of one record.

Every choice is drawn from a random generator seeded with HMAC-SHA256(secret salt, record key,
type, original value). So within one record the same name always becomes the same fake name,
reruns with the same salt give the same output, and without the salt nobody can test guesses
("does John Smith become Mark Ortiz?"). Dates are not drawn one by one: each record has one
offset, so every interval between two of its dates survives.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string

from faker import Faker

from tunesmith.data.deid.entities import PhiType
from tunesmith.data.deid.lexicons import Lexicons, fold

MAX_SHIFT_DAYS = 365
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def _case_like(word: str, fake: str) -> str:
    if word.isupper() and len(word) > 1:
        return fake.upper()
    if word.islower():
        return fake.lower()
    return fake


class RecordSurrogates:
    """The surrogates of one record; make a new one per record (it is cheap)."""

    def __init__(self, salt: bytes, record_key: str, faker: Faker, lexicons: Lexicons) -> None:
        self._salt = salt
        self._key = record_key
        self._faker = faker
        self._lex = lexicons
        self.date_offset = self._offset()

    def _rng(self, kind: str, original: str) -> random.Random:
        message = "\x1f".join((self._key, kind, original)).encode()
        digest = hmac.new(self._salt, message, hashlib.sha256).digest()
        return random.Random(int.from_bytes(digest[:16], "big"))

    def _offset(self) -> int:
        """Non-zero days in [-365, 365]: the one shift applied to every date of the record."""
        rng = self._rng("date-offset", "")
        return rng.choice((-1, 1)) * rng.randint(1, MAX_SHIFT_DAYS)

    def value(self, kind: PhiType, original: str) -> str:
        """The surrogate for an identifier other than a date (dates: see ``Deidentifier``)."""
        if kind is PhiType.NAME:
            return _WORD.sub(lambda m: self._name_word(m.group()), original)
        if kind is PhiType.AGE:
            return "90+"
        rng = self._rng(kind.value, original.lower())
        if kind is PhiType.EMAIL:
            pools = self._lex.pools()
            return f"{rng.choice(pools[0])}.{rng.choice(pools[1])}@example.com".lower()
        if kind is PhiType.URL:
            return f"https://www.example.org/{rng.getrandbits(32):08x}"
        if kind is PhiType.IP:
            if ":" in original:
                return "fd00::" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(3))
            return "10." + ".".join(str(rng.randint(0, 254)) for _ in range(3))
        if kind in (PhiType.ADDRESS, PhiType.CITY):
            self._faker.seed_instance(rng.getrandbits(64))
            if kind is PhiType.CITY:
                return self._faker.city()
            if re.search(r"\bbox\b", original, re.IGNORECASE):
                return f"PO Box {rng.randint(100, 9999)}"
            return self._faker.street_address()
        return self._scramble(kind, original, rng)

    def _name_word(self, word: str) -> str:
        """One word of a name, mapped alone so "John Smith" and "Mr. Smith" stay one person."""
        key = fold(word)
        rng = self._rng("NAME", key)
        if len(word) == 1:  # an initial
            return _case_like(word, rng.choice(string.ascii_uppercase))
        first, last = self._lex.pools()
        pool = first if key in self._lex.first_names else last
        fake = rng.choice(pool)
        if fold(fake) == key:
            fake = pool[(pool.index(fake) + 1) % len(pool)]
        return _case_like(word, fake)

    @staticmethod
    def _scramble(kind: PhiType, original: str, rng: random.Random) -> str:
        """Same shape, other characters: digits for digits, letters for letters."""
        if not any(c.isalnum() for c in original):
            return kind.placeholder
        out = []
        for i, c in enumerate(original):
            if c.isdigit():
                # a fake SSN starts with 9: that area is never issued, so it is no one's number
                first = kind is PhiType.SSN and not any(ch.isdigit() for ch in original[:i])
                out.append("9" if first else str(rng.randint(0, 9)))
            elif c.isalpha() and c.isascii():
                letter = rng.choice(string.ascii_uppercase)
                out.append(letter if c.isupper() else letter.lower())
            else:
                out.append(c)
        fake = "".join(out)
        return fake if fake != original else RecordSurrogates._scramble(kind, original, rng)
