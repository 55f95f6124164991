"""Finding people's names in clinical text, from several kinds of evidence.

A statistical NER model alone misses many names in notes (headers, lists, lower-case "pt's
wife linda") and takes eponyms and brands for people ("Foley", "Lasix"). So names come from:

1. context: a title ("Dr.", "Mrs."), a label ("Patient:", "Attending:", "Signed:"), a
   credential after the name (", MD"), a closing ("Sincerely,"), a relative ("daughter Ana");
2. the spaCy model's PERSON entities;
3. name lists: a listed given name followed by a capitalised word, or a listed name that is
   no common English word;
4. propagation: once a name is found, its other mentions in the same text are too.

Guesses (2-4) are vetoed for eponyms, drugs and note headings (see ``clinical``); explicit
context (1) is vetoed only when a clinical noun follows ("Dr. Parkinson" stays a person).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from tunesmith.data.deid.clinical import (
    NOTE_WORDS,
    followed_by_clinical_head,
    is_clinical_word,
    word_set,
)
from tunesmith.data.deid.entities import Finding, PhiType
from tunesmith.data.deid.lexicons import Lexicons, fold

TITLES = word_set(
    """
    dr doctor mr mrs ms miss mx prof professor rev sr sister nurse
    """
)
CREDENTIALS = word_set(
    """
    md m.d. do rn np pa pa-c phd dds lcsw msw cna lpn fnp anp aprn dnp pharmd mbbs facp crna
    ot pt slp rd
    """
)
RELATIONS = re.compile(
    r"\b(?:wife|husband|spouse|daughter|son|sister|brother|mother|father|mom|dad|niece|nephew"
    r"|grandson|granddaughter|grandmother|grandfather|grandma|grandpa|aunt|uncle|cousin|partner"
    r"|boyfriend|girlfriend|friend|neighbou?r|caregiver|roommate|fianc[ée]e?|stepson"
    r"|stepdaughter|guardian|sibling)(?:['’]s)?\b[\s,]*(?:named\s+|is\s+)?",
    re.IGNORECASE,
)
LABELS = re.compile(
    r"(?:^|\|)[ \t>*•-]*(?:patient(?:\s+name)?|pt(?:\s+name)?|name|full\s+name|attending"
    r"|pcp|primary\s+care(?:\s+physician)?|physician|provider|surgeon|resident|fellow|author"
    r"|signed(?:\s+by)?|electronically\s+signed\s+by|dictated\s+by|transcribed\s+by|cosigned\s+by"
    r"|seen\s+by|referring(?:\s+(?:physician|provider|doctor))?|emergency\s+contact|contact"
    r"|guardian|next\s+of\s+kin|nok|caregiver|(?:triage\s+)?(?:rn|nurse|np|pa)|cc|from|to|re"
    r"|interpreter|witness|consultant)\s*[:|]"
    r"|\b(?:dear|attending|pcp|signed|patient|name)\s*:|\bdear\b",
    re.IGNORECASE | re.MULTILINE,
)
CLOSINGS = re.compile(
    r"\b(?:sincerely|regards|best\s+wishes|best|thanks|thank\s+you|cheers|respectfully"
    r"|yours\s+truly|warmly|cordially)\s*[,!.]?[ \t]*\n*[ \t]*",
    re.IGNORECASE,
)
LAST_FIRST = re.compile(r"\b([A-Z][A-Z'’-]+),[ \t]+([A-Z][A-Z'’-]+)\b")
SELF_INTRO = re.compile(r"\b(?:this\s+is|my\s+name\s+is|i\s+am|i'm)\s+", re.IGNORECASE)


def _shaped(text: str) -> bool:
    """Capitalised (or all-caps) letters, with ' - . allowed inside: "O'Neil", "J.", "ANA"."""
    core = text.replace("'", "").replace("’", "").replace("-", "").replace(".", "")
    return bool(core) and core.isalpha() and text[0].isupper() and len(text) <= 30


def _stops(text: str) -> bool:
    w = text.lower().rstrip(".")
    return w in NOTE_WORDS or w in CREDENTIALS or w in TITLES


class NameFinder:
    """Name detection over one text and its spaCy ``Doc``; see the module docstring."""

    def __init__(self, lexicons: Lexicons) -> None:
        self.lex = lexicons

    def find(self, text: str, doc: Any) -> list[Finding]:
        at_char = _token_index(doc, len(text))
        found: list[Finding] = []
        found += self._context(text, doc, at_char)
        guesses = [p for g in self._guesses(text, doc) for p in _split_lines(text, g)]
        found += [f for f in guesses if self._plausible(text, f)]
        found += self._propagate(text, found)
        return [f for f in map(_strip_leading, [text] * len(found), found) if f.end > f.start]

    # -- evidence 1: context -----------------------------------------------------------------
    def _context(self, text: str, doc: Any, at_char: list[int]) -> list[Finding]:
        out: list[Finding] = []
        for tok in doc:
            if tok.text.lower().rstrip(".") in TITLES and tok.i + 1 < len(doc):
                out += self._walk(text, doc, tok.i + 1, "title")
        for pattern, source in ((LABELS, "label"), (CLOSINGS, "closing"), (SELF_INTRO, "intro")):
            for m in pattern.finditer(text):
                if m.end() < len(text):
                    out += self._walk(text, doc, at_char[m.end()], source)
        for m in RELATIONS.finditer(text):
            if m.end() < len(text):
                out += self._walk(text, doc, at_char[m.end()], "relation", lower_ok=True)
        out += self._before_credentials(doc)
        return [f for f in out if not followed_by_clinical_head(text, f.end)]

    def _walk(
        self, text: str, doc: Any, i: int, source: str, lower_ok: bool = False
    ) -> list[Finding]:
        """The name starting at token ``i``: up to four name-shaped tokens ("SMITH, JOHN" too)."""
        while i < len(doc) and doc[i].is_space and "\n\n\n" not in doc[i].text:
            i += 1
        if i < len(doc) and doc[i].text.lower().rstrip(".") in TITLES:
            i += 1
        taken: list[Any] = []
        comma = False
        while i < len(doc) and len(taken) < 4:
            tok = doc[i]
            if _shaped(tok.text) and not _stops(tok.text):
                taken.append(tok)
            elif not taken and lower_ok and self._lower_name(tok):
                taken.append(tok)
                break
            elif (
                tok.text in ("-", "'") and taken and not taken[-1].whitespace_ and i + 1 < len(doc)
            ):
                pass  # a hyphenated name: "Mary-Jane"
            elif (
                tok.text == ","
                and len(taken) == 1
                and not comma
                and i + 1 < len(doc)
                and (
                    _shaped(doc[i + 1].text)
                    and not _stops(doc[i + 1].text)
                    and not is_clinical_word(doc[i + 1].text)
                    and source != "relation"
                )
            ):
                comma = True  # "SMITH, JOHN" / "Smith, John"
            elif (
                tok.text == "." and taken and len(taken[-1].text) == 1 and not taken[-1].whitespace_
            ):
                pass  # an initial the tokenizer split: "E" "."
            else:
                break
            if tok.whitespace_ and "\n" in tok.whitespace_:
                break
            i += 1
        if not taken:
            return []
        return [
            Finding(taken[0].idx, taken[-1].idx + len(taken[-1].text), PhiType.NAME, 0.9, source)
        ]

    def _lower_name(self, tok: Any) -> bool:
        """A lower-case word after "wife"/"son"...: "pt's wife linda". It must be a listed name
        or no English word, and not be tagged as a verb, preposition and the like."""
        word = tok.text
        if not word.isalpha() or len(word) < 2 or tok.is_stop or is_clinical_word(word):
            return False
        if tok.pos_ in ("VERB", "AUX", "ADP", "ADV", "DET", "PRON", "CCONJ", "SCONJ", "NUM"):
            return False
        return self.lex.is_name(word) or not self.lex.is_common(word)

    def _before_credentials(self, doc: Any) -> list[Finding]:
        """ "Ana Ruiz, MD" / "Ana Ruiz RN": the name-shaped tokens before a credential."""
        out = []
        for tok in doc:
            if tok.text.lower() not in CREDENTIALS or (
                not tok.text.isupper() and tok.text != "PhD"
            ):
                continue
            j = tok.i - 1
            if j >= 0 and doc[j].text == ",":
                j -= 1
            end = j
            while j >= 0 and end - j < 3 and _shaped(doc[j].text) and not _stops(doc[j].text):
                j -= 1
            if j < end:
                first, last = doc[j + 1], doc[end]
                out.append(
                    Finding(first.idx, last.idx + len(last.text), PhiType.NAME, 0.9, "credential")
                )
        return out

    # -- evidence 2 and 3: model and lists ---------------------------------------------------
    def _guesses(self, text: str, doc: Any) -> Iterator[Finding]:
        for ent in doc.ents:
            if ent.label_ == "PERSON":
                yield Finding(ent.start_char, ent.end_char, PhiType.NAME, 0.7, "spacy")
        for m in LAST_FIRST.finditer(text):  # "SMITH, JOHN" in a header line
            last, first = m.group(1), m.group(2)
            if fold(first) in self.lex.first_names and (
                self.lex.is_name(last) or not self.lex.is_common(last)
            ):
                yield Finding(m.start(), m.end(), PhiType.NAME, 0.7, "last_first")
        tokens = [t for t in doc if not t.is_space]
        for k, tok in enumerate(tokens):
            word = tok.text
            if not _shaped(word) or len(word) < 2 or not self.lex.is_name(word):
                continue
            nxt = tokens[k + 1] if k + 1 < len(tokens) else None
            if (
                fold(word) in self.lex.first_names
                and nxt is not None
                and _shaped(nxt.text)
                and (self.lex.is_name(nxt.text) or not self.lex.is_common(nxt.text))
                and not _stops(nxt.text)
                and not tok.whitespace_.count("\n")
            ):
                yield Finding(tok.idx, nxt.idx + len(nxt.text), PhiType.NAME, 0.7, "list_pair")
            elif not self.lex.is_common(word):
                yield Finding(tok.idx, tok.idx + len(word), PhiType.NAME, 0.6, "list")

    def _plausible(self, text: str, f: Finding) -> bool:
        """Veto a guess made only of clinical words, note words, digits or common words."""
        words = re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)?", text[f.start : f.end])
        if not words or re.search(r"\d", text[f.start : f.end]):
            return False
        if not any(w[0].isupper() for w in words):  # lower-case names come from context only
            return False
        if all(is_clinical_word(w) or _stops(w) or len(w) < 2 for w in words):
            return False
        if any(is_clinical_word(w) for w in words) and not any(self.lex.is_name(w) for w in words):
            return False
        if all(self.lex.is_common(w) and not self.lex.is_name(w) for w in words):
            return False
        return not followed_by_clinical_head(text, f.end)

    # -- evidence 4: other mentions ----------------------------------------------------------
    def _propagate(self, text: str, found: list[Finding]) -> list[Finding]:
        """Other mentions of the words of names found: any case for a word that is no common
        English word, the same case only for one that is ("Will" but not "will")."""
        exact: set[str] = set()
        folded: set[str] = set()
        for f in found:
            for w in re.findall(r"[^\W\d_][^\W\d_'’-]+", text[f.start : f.end]):
                if not (is_clinical_word(w) or _stops(w) or RELATIONS.fullmatch(w)):
                    (exact if self.lex.is_common(w) else folded).add(w)
        out = []
        for words, flags in ((exact, 0), (folded, re.IGNORECASE)):
            if words:
                alternatives = "|".join(map(re.escape, sorted(words)))
                pattern = re.compile(r"(?<![\w-])(?:" + alternatives + r")(?![\w-])", flags)
                out += [
                    Finding(m.start(), m.end(), PhiType.NAME, 0.8, "propagated")
                    for m in pattern.finditer(text)
                    if not followed_by_clinical_head(text, m.end())
                ]
        return out


def _strip_leading(text: str, f: Finding) -> Finding:
    """ "Friend Liam" -> "Liam": a title, relation or heading word is not part of the name."""
    start = f.start
    while m := re.match(r"([^\W\d_]+)\.?\s+", text[start : f.end]):
        word = m.group(1)
        if not (_stops(word) or RELATIONS.fullmatch(word)):
            break
        start += m.end()
    return Finding(start, f.end, f.type, f.score, f.source)


def _token_index(doc: Any, length: int) -> list[int]:
    """For each character offset, the token there, or the next one when it is whitespace."""
    index = [len(doc)] * (length + 1)
    for tok in reversed(doc):
        end = min(length, tok.idx + len(tok.text_with_ws))
        for c in range(tok.idx, end):
            index[c] = tok.i if c < tok.idx + len(tok.text) else tok.i + 1
    return index


def _split_lines(text: str, f: Finding) -> list[Finding]:
    """A name does not run over a line break; the model's entities sometimes do."""
    out, start = [], f.start
    for i in range(f.start, f.end + 1):
        if i == f.end or text[i] == "\n":
            if text[start:i].strip():
                out.append(Finding(start, i, f.type, f.score, f.source))
            start = i + 1
    return out
