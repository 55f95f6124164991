"""Word lists the name detector consults: given names and surnames, and common English words.

Names come from Faker's person providers (Faker is already needed for surrogates): a few
thousand given names and surnames from the locales below. Common words come from the WordNet
index that the spaCy model ships for its lemmatiser, so "Will", "Grace" or "Brown" alone are
not taken for names without further evidence.
"""

from __future__ import annotations

import functools
import importlib
import unicodedata
from dataclasses import dataclass

# Latin-script locales whose name lists are loaded. The benchmark's "unlisted" names come from
# other locales on purpose, to measure what the detector finds without a list.
NAME_LOCALES = (
    "en_US",
    "en_GB",
    "en_IE",
    "en_IN",
    "en_CA",
    "es_ES",
    "es_MX",
    "it_IT",
    "de_DE",
    "fr_FR",
    "pt_BR",
    "nl_NL",
    "pl_PL",
    "vi_VN",
)


def fold(word: str) -> str:
    """Lower-case without accents, so "José" and "JOSE" meet."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _names_of(locale: str) -> tuple[set[str], set[str]]:
    try:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    except ImportError:  # a Faker without this locale: fewer names, not an error
        return set(), set()
    first: set[str] = set()
    last: set[str] = set()
    for attr in dir(provider):
        if attr.startswith(("first_names", "last_names")):
            values = getattr(provider, attr)
            target = first if attr.startswith("first") else last
            target.update(fold(part) for name in values for part in str(name).split())
    return first, last


@dataclass(frozen=True)
class Lexicons:
    first_names: frozenset[str]
    last_names: frozenset[str]
    common_words: frozenset[str]

    def pools(self) -> tuple[list[str], list[str]]:
        """Given names and surnames to draw surrogates from, in a fixed order."""
        return _pools(self.first_names, self.last_names)

    def is_name(self, word: str) -> bool:
        w = fold(word)
        return w in self.first_names or w in self.last_names

    def is_common(self, word: str) -> bool:
        """An English word, inflected forms included ("arrived", "walking")."""
        w = fold(word)
        stems = [w]
        for ending, cuts in (
            ("ed", (1, 2)),
            ("ing", (3,)),
            ("es", (1, 2)),
            ("s", (1,)),
            ("ly", (2,)),
        ):
            if w.endswith(ending) and len(w) > len(ending) + 2:
                stems += [w[:-cut] for cut in cuts]
                stems += [w[:-3] + "e"] if ending == "ing" else []
        return any(s in self.common_words for s in stems)


@functools.lru_cache(maxsize=4)
def _pools(first: frozenset[str], last: frozenset[str]) -> tuple[list[str], list[str]]:
    return sorted(w.title() for w in first), sorted(w.title() for w in last)


def load_lexicons(common_words: frozenset[str]) -> Lexicons:
    first: set[str] = set()
    last: set[str] = set()
    for locale in NAME_LOCALES:
        f, la = _names_of(locale)
        first |= f
        last |= la
    keep = {w for w in first | last if len(w) > 1 and w.isalpha()}
    return Lexicons(frozenset(first & keep), frozenset(last & keep), common_words)


def spacy_common_words(nlp: object) -> frozenset[str]:
    """The lemmatiser's word index (nouns, verbs, adjectives, adverbs) plus stop words."""
    words: set[str] = set(getattr(nlp.Defaults, "stop_words", set()))  # type: ignore[attr-defined]
    try:
        table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_index")  # type: ignore[attr-defined]
    except (KeyError, ValueError):
        return frozenset(words)
    for pos in ("noun", "verb", "adj", "adv"):
        words.update(w.lower() for w in table.get(pos, []) if "_" not in w)
    return frozenset(words)
