"""De-identification of clinical text: HIPAA Safe Harbor identifiers found and replaced.

    from tunesmith.data.deid import Deidentifier, deidentify_file

    deid = Deidentifier(mode="surrogate", salt=load_or_create_salt(data_dir / "deid-salt"))
    text, counts = deid.deidentify_text(note, record_key="patient-17")
    report = deidentify_file("notes.jsonl", "notes.deid.jsonl", report_path="deid.json")

Detection is Presidio's analyzer with tunesmith's recognisers (``engine``); the choice and
its measurement are in docs/decisions/002-deidentification.md and docs/benchmarks.md.
"""

from tunesmith.data.deid.deidentifier import Deidentifier, DeidMode, load_or_create_salt
from tunesmith.data.deid.engine import DeidEngine, load_engine
from tunesmith.data.deid.entities import Finding, PhiType
from tunesmith.data.deid.files import DeidReport, deidentify_file, deidentify_stream

__all__ = [
    "DeidEngine",
    "DeidMode",
    "DeidReport",
    "Deidentifier",
    "Finding",
    "PhiType",
    "deidentify_file",
    "deidentify_stream",
    "load_engine",
    "load_or_create_salt",
]
