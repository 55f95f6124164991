"""Regular-expression detectors for the identifiers that have a shape: numbers, addresses, ages.

Numbers are found two ways: by their label ("MRN:", "Member ID", "serial no.") whatever their
shape, and by shape alone when nothing else explains them (a run of six or more digits, a code
mixing letters with three digits in a row). Labels decide the type; shape alone gives ``ID``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from tunesmith.data.deid.dates import find_dates
from tunesmith.data.deid.entities import Finding, PhiType

T = PhiType
_I = re.IGNORECASE

PHONE = re.compile(
    r"(?<![\w/.-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
    r"(?:\s*(?:ext\.?|x|extension)\s*\d{1,6})?(?![\w-]|\.\d)",
    _I,
)
PHONE_LABELLED = re.compile(
    r"\b(?:phone|tel|telephone|cell|mobile|fax|pager|ph|call(?:ed)?(?:\s+at)?)\b\.?[\s:#|]*"
    r"(?P<v>\+?\d[\d\s().-]{8,18}\d)",
    _I,
)
EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
URL = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"'|]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|edu|gov|io|info|us)"
    r"(?:/[^\s<>\"'|]*)?\b",
    _I,
)
IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.]\d)"
)
IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:?){1,6}(?![\w:])",
    _I,
)
SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
SSN_LABELLED = re.compile(
    r"\b(?:SSN|SS#|social\s+security(?:\s+(?:number|no\.?|#))?)\b[\s:#|]*(?:is\s+)?"
    r"(?P<v>\d{3}[- ]?\d{2}[- ]?\d{4})\b",
    _I,
)

_VALUE = r"(?P<v>(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])){3,24})"
MRN = re.compile(
    r"\b(?:MRN|MR\s?#|MR\s?No\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|chart\s*(?:#|no\.?|number)"
    r"|unit\s+(?:no\.?|number)|patient\s+(?:id|number|no\.?))\b\s*[:#|]*\s*(?:is\s+)?" + _VALUE,
    _I,
)
ID_LABELLED = re.compile(
    r"\b(?:acc(?:oun)?t|member|subscriber|policy|group|plan|insurance|medicaid|medicare|beneficiary"
    r"|licen[cs]e|DL|DEA|NPI|UPIN|serial|S/?N|UDI|device|implant|plate|VIN|certificate|passport"
    r"|badge|employee|claim|encounter|visit|case|ID)\b\.?(?:\s*(?:number|no\.?|num|#|ID|id|is|:))*"
    r"\s*[:#|]*\s*" + _VALUE,
    _I,
)
LONG_NUMBER = re.compile(r"(?<![\w.,/-])\d(?:[\d-]*\d){5,}(?![\w/]|[.,]\d)")
CODE = re.compile(
    r"(?<![\w-])(?=[A-Z0-9-]*[A-Z])(?=[A-Z0-9-]*\d{3})[A-Z0-9](?:[A-Z0-9]|-(?=[A-Z0-9])){5,24}(?![\w-])"
)
YEAR_RANGE = re.compile(r"^(?:19|20)\d\d-(?:19|20)\d\d$")
_UNIT = re.compile(
    r"^\d+(?:mg|mcg|g|kg|ml|cc|iu|units?|mm|cm|mmhg|bpm|hrs?|mins?|mmol|meq|l|lbs?|oz)$", _I
)

AGE = re.compile(
    r"(?:\bage[ds]?\b[\s:|]*(?:of\s+)?(?:is\s+)?(?P<a>9\d|1[01]\d)\b"
    r"|(?<![\w.])(?P<b>9\d|1[01]\d)\s*(?:-|\s)?\s*(?:years?|yrs?|y/?o|y\.o\.|yo)\b)",
    _I,
)

_SUFFIXES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Place|Pl|Way|Terrace"
    "|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Alley|Bend|Bluff|Branch|Bridge"
    "|Brook|Brooks|Burg|Bypass|Camp|Canyon|Cape|Causeway|Center|Centre|Cliff|Club|Common|Corner"
    "|Corners|Course|Cove|Creek|Crescent|Crest|Crossing|Curve|Dale|Dam|Divide|Estate|Estates"
    "|Expressway|Extension|Falls?|Ferry|Fields?|Flats?|Ford|Forest|Forge|Fork|Fort|Freeway"
    "|Gardens?|Gateway|Glen|Green|Grove|Harbor|Haven|Heights|Hill|Hills|Hollow|Inlet|Island|Isle"
    "|Junction|Key|Knoll|Lake|Landing|Light|Loaf|Lock|Lodge|Loop|Mall|Manor|Meadows?|Mews|Mill"
    "|Mills|Mission|Motorway|Mount|Mountain|Neck|Orchard|Oval|Overpass|Park|Pass|Passage|Path"
    "|Pike|Pines?|Plains?|Plaza|Point|Port|Prairie|Ranch|Ramp|Rapids?|Rest|Ridge|River|Roads?"
    "|Route|Row|Rue|Run|Shoals?|Shores?|Skyway|Springs?|Spur|Station|Stream|Summit|Trace|Track"
    "|Trafficway|Tunnel|Turnpike|Underpass|Union|Valley|Via|View|Village|Ville|Vista|Walk|Wall"
    "|Wells?|Wy|Stravenue|Viaduct|Crossroads?|Throughway|Boulevard|Esplanade|Promenade|Quay"
    "|Radial|Land"  # found missing by the EHR example's generator (Faker's US suffixes)
)
ADDRESS = re.compile(
    r"\b\d{1,6}[A-Z]?\s+(?:[NSEW]\.?\s+|North\s+|South\s+|East\s+|West\s+)?(?:[A-Z][\w'.-]*\s+){1,4}"
    r"(?:"
    + _SUFFIXES
    + r")s?\b\.?(?:\s*,?\s*(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#|Rm\.?|Room|Fl\.?"
    r"|Floor|Bldg\.?)\s*#?[\w-]+)?"
    r"|\bP\.?\s?O\.?\s+Box\s+\d+\b"
    # no known suffix, but a unit gives it away: "12 Mitchell Land Suite 5"
    r"|\b\d{1,6}\s+(?:[A-Z][\w'.-]*\s+){1,3}(?:Apt\.?|Apartment|Suite|Ste\.?|Unit)\s*#?[\w-]+"
)
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH"
    "|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
_STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia"
    "|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts"
    "|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey"
    "|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania"
    "|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington"
    "|West Virginia|Wisconsin|Wyoming"
)
ZIP = re.compile(
    r"(?:\b(?:" + _STATES + r"|" + _STATE_NAMES + r")\.?,?\s+|\bzip(?:\s*code)?\s*[:#]?\s*)"
    r"(?P<v>\d{5}(?:-\d{4})?)(?![\w-])"
)
_CITY_WORDS = r"[A-Z][a-zA-Z'.-]+(?:[ -](?:[A-Z][a-zA-Z'.-]+|of|de|la))*"
# "Kirk, MD" is a doctor, not Kirk in Maryland: MD and PA count as states only before a ZIP.
CITY_STATE = re.compile(
    r"(?P<v>" + _CITY_WORDS + r"),\s*(?:(?:" + _STATES + r")\b\.?(?=,?\s+\d{5})"
    r"|(?!MD\b|PA\b)(?:" + _STATES + r")\b\.?(?=\s*$|\s*[,;)|])|(?:" + _STATE_NAMES + r")\b)",
    re.MULTILINE,
)
CITY_AFTER_ADDRESS = re.compile(
    r"(?:\s*,\s*|\s+in\s+)(?P<v>" + _CITY_WORDS + r")(?=,|\.|\s*\)|\s*$)", re.MULTILINE
)
CITY_CONTEXT = re.compile(
    r"\b(?:lives?|living|resides?|residing|moved|relocated|home|born)\s+(?:in|to|at|near|from)\s+"
    r"(?:the\s+)?(?P<v>" + _CITY_WORDS + r")"
)


def _group(m: re.Match[str], kind: PhiType, score: float, source: str) -> Finding:
    name = "v" if "v" in m.re.groupindex and m.group("v") else 0
    return Finding(m.start(name), m.end(name), kind, score, source)


def find_structured(text: str) -> Iterator[Finding]:
    """Every shaped identifier; overlaps are left to ``merge_findings``."""
    for d in find_dates(text):
        yield Finding(d.start, d.end, T.DATE, 0.9, "date")
    simple = (
        (EMAIL, T.EMAIL, 1.0),
        (URL, T.URL, 0.9),
        (IPV4, T.IP, 0.9),
        (IPV6, T.IP, 0.9),
        (PHONE, T.PHONE, 0.8),
        (PHONE_LABELLED, T.PHONE, 0.8),
        (SSN, T.SSN, 0.8),
        (SSN_LABELLED, T.SSN, 1.0),
        (MRN, T.MRN, 1.0),
        (ID_LABELLED, T.ID, 0.9),
        (ADDRESS, T.ADDRESS, 0.8),
        (ZIP, T.ZIP, 0.9),
        (CITY_STATE, T.CITY, 0.8),
        (CITY_CONTEXT, T.CITY, 0.6),
    )
    for pattern, kind, score in simple:
        for m in pattern.finditer(text):
            yield _group(m, kind, score, kind.value.lower())
    for m in AGE.finditer(text):
        group = "a" if m.group("a") else "b"
        yield Finding(m.start(group), m.end(group), T.AGE, 0.9, "age")
    for m in ADDRESS.finditer(text):
        after = CITY_AFTER_ADDRESS.match(text, m.end())
        if after and after.group("v").split()[0] not in ("Apt", "Suite", "Unit"):
            yield _group(after, T.CITY, 0.7, "city_after_address")
    yield from _shaped_numbers(text)


def _shaped_numbers(text: str) -> Iterator[Finding]:
    """Numbers no label explains: long digit runs and letter-digit codes become ``ID``."""
    for m in LONG_NUMBER.finditer(text):
        if YEAR_RANGE.match(m.group()):
            continue
        yield Finding(m.start(), m.end(), T.ID, 0.6, "long_number")
    for m in CODE.finditer(text):
        if not _UNIT.match(m.group()):
            yield Finding(m.start(), m.end(), T.ID, 0.6, "code")
