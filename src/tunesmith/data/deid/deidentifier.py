"""``Deidentifier``: replaces the identifiers in a text by placeholders or surrogates."""

from __future__ import annotations

import os
from collections import Counter
from enum import StrEnum
from pathlib import Path

from faker import Faker

from tunesmith.data.deid.dates import find_dates, shift_date
from tunesmith.data.deid.engine import DeidEngine, load_engine
from tunesmith.data.deid.entities import Finding, PhiType
from tunesmith.data.deid.surrogates import RecordSurrogates
from tunesmith.errors import ConfigError

SALT_BYTES = 32


class DeidMode(StrEnum):
    PLACEHOLDER = "placeholder"  # "[NAME]", "[DATE]": nothing of the value is left
    SURROGATE = "surrogate"  # consistent fake values; dates shifted per record


def load_or_create_salt(path: str | Path) -> bytes:
    """The secret salt kept at ``path``, created (readable by the owner only) on first use.

    Surrogates are stable across reruns only with the same salt; keep the file with the data
    directory, never with the de-identified data.
    """
    path = Path(path)
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = os.urandom(SALT_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(salt)
    return salt


def parse_mode(mode: DeidMode | str) -> DeidMode:
    try:
        return DeidMode(mode)
    except ValueError:
        choices = ", ".join(m.value for m in DeidMode)
        raise ConfigError(
            f"unknown de-identification mode {mode!r}: use one of {choices}"
        ) from None


class Deidentifier:
    """Finds identifiers (``DeidEngine``) and replaces them.

    ``salt`` seeds surrogates; without one, a random salt is drawn, so surrogates are stable
    within this object only. Pass ``load_or_create_salt(...)`` for stable reruns.
    """

    def __init__(
        self,
        mode: DeidMode | str = DeidMode.PLACEHOLDER,
        *,
        salt: bytes | str | None = None,
        engine: DeidEngine | None = None,
    ) -> None:
        self.mode = parse_mode(mode)
        self.engine = engine or load_engine()
        if salt is None:
            salt = os.urandom(SALT_BYTES)
        self._salt = salt.encode() if isinstance(salt, str) else salt
        self._faker = Faker("en_US")

    @property
    def salt(self) -> bytes:
        """The secret that seeds surrogates and record pseudonyms; never write it to the data."""
        return self._salt

    def deidentify_text(self, text: str, *, record_key: str) -> tuple[str, dict[str, int]]:
        """``text`` with every identifier replaced, and how many of each type were replaced.

        ``record_key`` names the record (patient, note) the text belongs to: in surrogate mode
        every text with the same key gets the same fake names and the same date shift.
        """
        findings = self.engine.detect(text)
        counts: Counter[str] = Counter(f.type.value for f in findings)
        if self.mode is DeidMode.PLACEHOLDER:
            replace = _placeholder
        else:
            replace = _Surrogate(
                text, RecordSurrogates(self._salt, record_key, self._faker, self.engine.lexicons)
            )
        pieces, last = [], 0
        for f in findings:
            pieces += [text[last : f.start], replace(f, text[f.start : f.end])]
            last = f.end
        pieces.append(text[last:])
        return "".join(pieces), dict(counts)


def _placeholder(finding: Finding, original: str) -> str:
    return finding.type.placeholder


class _Surrogate:
    """Surrogate replacement for one text: dates need the text around them to be parsed."""

    def __init__(self, text: str, surrogates: RecordSurrogates) -> None:
        self.text = text
        self.surrogates = surrogates
        self.dates = list(find_dates(text))

    def __call__(self, finding: Finding, original: str) -> str:
        if finding.type is not PhiType.DATE:
            return self.surrogates.value(finding.type, original)
        inside = [d for d in self.dates if finding.start <= d.start and d.end <= finding.end]
        if not inside:
            return PhiType.DATE.placeholder  # a date we cannot read is not guessed at
        out, last = [], finding.start
        for d in inside:
            between = self.text[last : d.start]
            if any(c.isalnum() for c in between):
                return PhiType.DATE.placeholder  # merged with something else: copy none of it
            out += [between, shift_date(self.text, d, self.surrogates.date_offset)]
            last = d.end
        if any(c.isalnum() for c in self.text[last : finding.end]):
            return PhiType.DATE.placeholder
        out.append(self.text[last : finding.end])
        return "".join(out)
