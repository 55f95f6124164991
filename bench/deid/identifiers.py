"""Fake identifier values in the many formats real notes use, for the synthetic note generator.

Every value here is invented (Faker, or random digits); no real person's data is involved.
Formats vary on purpose: a de-identifier tuned to one phone format would look perfect on a
generator that only writes that one.
"""

from __future__ import annotations

import datetime as dt
import random
import string

from faker import Faker

# Names come from two pools. The "listed" locales overlap the name lists a detector may carry
# (Faker's own lists); the "unlisted" ones and the invented names do not, so the benchmark can
# report recall on names no list contains.
LISTED_LOCALES = ("en_US", "en_GB", "es_MX", "it_IT", "de_DE", "fr_FR", "en_IN")
UNLISTED_LOCALES = ("fi_FI", "hu_HU", "yo_NG", "zu_ZA", "tr_TR", "sv_SE", "cs_CZ", "ro_RO")

US_CITIES = (
    "Boston",
    "Springfield",
    "Worcester",
    "Hartford",
    "Providence",
    "Albany",
    "Buffalo",
    "Rochester",
    "Pittsburgh",
    "Cleveland",
    "Columbus",
    "Dayton",
    "Toledo",
    "Detroit",
    "Chicago",
    "Milwaukee",
    "Madison",
    "Minneapolis",
    "Omaha",
    "Wichita",
    "Tulsa",
    "Dallas",
    "Houston",
    "Austin",
    "San Antonio",
    "El Paso",
    "Phoenix",
    "Tucson",
    "Albuquerque",
    "Denver",
    "Boise",
    "Spokane",
    "Seattle",
    "Tacoma",
    "Portland",
    "Sacramento",
    "Fresno",
    "Oakland",
    "San Diego",
    "Los Angeles",
    "Reno",
    "Las Vegas",
    "Salt Lake City",
    "Atlanta",
    "Savannah",
    "Charlotte",
    "Raleigh",
    "Richmond",
    "Baltimore",
    "Newark",
    "Trenton",
    "Scranton",
    "Louisville",
    "Nashville",
    "Memphis",
    "Birmingham",
    "Jackson",
    "Tampa",
    "Orlando",
    "Miami",
    "Lowell",
    "Framingham",
    "Quincy",
    "Brockton",
    "Nashua",
    "Burlington",
)
STATES = ("MA", "NY", "CA", "TX", "OH", "PA", "IL", "WA", "GA", "NC", "FL", "MN", "CO", "AZ")
STATE_NAMES = ("Massachusetts", "New York", "California", "Texas", "Ohio", "Pennsylvania")
SYLLABLES = ("ka", "zor", "vel", "mi", "tra", "qua", "lun", "dex", "or", "bre", "sha", "nim")


class Fakes:
    """All random choices of one generator run go through one seeded `random.Random`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._fakers: dict[str, Faker] = {}
        self.unlisted: set[str] = set()  # lower-cased name parts from no listed locale

    def faker(self, locale: str) -> Faker:
        if locale not in self._fakers:
            fake = Faker(locale)
            fake.seed_instance(self.rng.randrange(2**31))
            self._fakers[locale] = fake
        return self._fakers[locale]

    # -- people -----------------------------------------------------------------------------
    def person(self) -> tuple[str, str]:
        """(first, last): 60% listed locales, 30% unlisted, 10% invented."""
        roll = self.rng.random()
        if roll < 0.1:
            first, last = self._invented().title(), self._invented().title()
        else:
            pool = LISTED_LOCALES if roll < 0.7 else UNLISTED_LOCALES
            fake = self.faker(self.rng.choice(pool))
            first, last = fake.first_name().split()[0], fake.last_name().split()[-1]
        if roll < 0.1 or roll >= 0.7:
            self.unlisted.update((first.lower(), last.lower()))
        return first, last

    def _invented(self) -> str:
        return "".join(self.rng.choice(SYLLABLES) for _ in range(self.rng.randint(2, 3)))

    # -- numbers ----------------------------------------------------------------------------
    def digits(self, n: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(n))

    def letters(self, n: int) -> str:
        return "".join(self.rng.choice(string.ascii_uppercase) for _ in range(n))

    def phone(self) -> str:
        a, b, c = str(self.rng.randint(201, 989)), self.digits(3), self.digits(4)
        fmt = self.rng.choice(
            (
                "({a}) {b}-{c}",
                "{a}-{b}-{c}",
                "{a}.{b}.{c}",
                "+1 {a} {b} {c}",
                "{a} {b} {c}",
                "1-{a}-{b}-{c}",
                "({a}){b}-{c}",
                "{a}-{b}-{c} ext. {x}",
                "+1-{a}-{b}-{c}",
            )
        )
        return fmt.format(a=a, b=b, c=c, x=self.rng.randint(10, 9999))

    def ssn(self) -> str:
        a, b, c = str(self.rng.randint(100, 665)), self.digits(2), self.digits(4)
        return self.rng.choice((f"{a}-{b}-{c}", f"{a}-{b}-{c}", f"{a} {b} {c}", f"{a}{b}{c}"))

    def mrn(self) -> str:
        return self.rng.choice(
            (
                self.digits(7),
                self.digits(8),
                "00" + self.digits(6),
                f"MR{self.digits(7)}",
                f"{self.digits(2)}-{self.digits(3)}-{self.digits(3)}",
                self.digits(10),
                f"E{self.digits(8)}",
            )
        )

    def account(self) -> str:
        return self.rng.choice(
            (self.digits(10), f"ACCT-{self.digits(7)}", f"A{self.digits(8)}", self.digits(12))
        )

    def member_id(self) -> str:
        return self.rng.choice(
            (
                f"{self.letters(3)}{self.digits(9)}",
                f"W{self.digits(9)}",
                f"{self.digits(3)}-{self.digits(3)}-{self.digits(3)}",
                f"{self.letters(2)}{self.digits(7)}",
            )
        )

    def licence(self) -> str:
        return self.rng.choice(
            (
                f"D{self.digits(7)}",
                f"S{self.digits(3)}-{self.digits(4)}-{self.digits(4)}",
                f"{self.letters(2)}{self.digits(7)}",
                self.digits(9),
            )
        )

    def serial(self) -> str:
        return self.rng.choice(
            (
                f"{self.letters(3)}{self.digits(6)}{self.letters(1)}",
                f"{self.digits(1)}{self.letters(1)}{self.digits(2)}-{self.letters(2)}{self.digits(2)}-{self.digits(4)}",
                f"SN{self.digits(8)}",
                f"{self.letters(2)}-{self.digits(6)}",
            )
        )

    def plate(self) -> str:
        return f"{self.digits(1)}{self.letters(3)}{self.digits(3)}"

    def npi(self) -> str:
        return "1" + self.digits(9)

    # -- internet ---------------------------------------------------------------------------
    def email(self, first: str, last: str) -> str:
        user = self.rng.choice(
            (f"{first}.{last}", f"{first[0]}{last}{self.rng.randint(1, 99)}", f"{last}_{first}")
        ).lower()
        user = user.encode("ascii", "ignore").decode() or "pt" + self.digits(4)
        domain = self.rng.choice(
            (
                "gmail.com",
                "yahoo.com",
                "outlook.com",
                "comcast.net",
                "hospital.org",
                "mail.example.com",
                "aol.com",
            )
        )
        return f"{user}@{domain}"

    def url(self, last: str) -> str:
        slug = last.lower().encode("ascii", "ignore").decode() or "home"
        return self.rng.choice(
            (
                f"https://mychart.{slug}health.org/patient/{self.digits(6)}",
                f"www.{slug}family.com",
                f"http://portal.example.net/p?id={self.digits(7)}",
                f"https://www.facebook.com/{slug}.{self.digits(3)}",
            )
        )

    def ip(self) -> str:
        if self.rng.random() < 0.15:
            return ":".join(f"{self.rng.randrange(65536):x}" for _ in range(8))
        return ".".join(str(self.rng.randint(1, 254)) for _ in range(4))

    # -- places -----------------------------------------------------------------------------
    def street(self) -> str:
        fake = self.faker("en_US")
        if self.rng.random() < 0.08:
            return f"PO Box {self.rng.randint(10, 9999)}"
        return fake.street_address()

    def city(self) -> str:
        return self.rng.choice(US_CITIES) if self.rng.random() < 0.6 else self.faker("en_US").city()

    def state(self) -> str:
        return self.rng.choice(STATES)

    def zip(self) -> str:
        return self.digits(5) if self.rng.random() < 0.8 else f"{self.digits(5)}-{self.digits(4)}"

    # -- dates and ages ---------------------------------------------------------------------
    def date(self, start_year: int = 2015, end_year: int = 2024) -> dt.date:
        start = dt.date(start_year, 1, 1).toordinal()
        return dt.date.fromordinal(self.rng.randint(start, dt.date(end_year, 12, 28).toordinal()))

    def date_text(self, day: dt.date, short: bool = False) -> str:
        """One of the date formats notes use. `short` allows forms without a year."""
        forms = [
            f"{day.month:02d}/{day.day:02d}/{day.year}",
            f"{day.month}/{day.day}/{day.year}",
            f"{day.month}/{day.day}/{day.year % 100:02d}",
            day.isoformat(),
            day.strftime("%B %-d, %Y"),
            day.strftime("%b %-d, %Y"),
            day.strftime("%-d %B %Y"),
            day.strftime("%d-%b-%Y"),
            day.strftime("%b. %-d, %Y"),
            f"{day.month}-{day.day}-{day.year}",
        ]
        if short:
            forms += [f"{day.month}/{day.day}", day.strftime("%B %-d"), day.strftime("%b %Y")]
        return self.rng.choice(forms)
