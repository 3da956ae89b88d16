"""Exchange: export captures for others and describe them to people.

- :func:`export_wacz` (:mod:`.wacz`): a WACZ 1.1.1 file, optionally signed (:mod:`.signing`);
- :func:`export_bagit` (:mod:`.bagit`): a BagIt 1.0 bag whose ``data/`` is an archive root;
- :func:`check_package` (:mod:`.check`): check either kind offline;
- :func:`write_report` (:mod:`.report`): a self-contained HTML (or PDF) capture report.

:mod:`.plan` gathers what an export holds (captures, a log snapshot, proof bundles) from an
:mod:`.source` (an archive directory or an ``s3://`` root, one code path for both),
:mod:`.cdxj` writes replay index lines, :mod:`.files` streams, hashes and publishes files
atomically. Exports and reports only read the archive. Imports point one way: this package
uses archive, storage, log, warc and hashing; nothing below imports it. See docs/exchange.md.
"""

from preserve.exchange.bagit import BagInfo, export_bagit
from preserve.exchange.check import CheckResult, check_package
from preserve.exchange.plan import ExportResult, read_id_file
from preserve.exchange.report import ReportError, ReportResult, write_report
from preserve.exchange.signing import WaczSigner
from preserve.exchange.source import ArchiveSource, source_for
from preserve.exchange.wacz import export_wacz

__all__ = [
    "ArchiveSource",
    "BagInfo",
    "CheckResult",
    "ExportResult",
    "ReportError",
    "ReportResult",
    "WaczSigner",
    "check_package",
    "export_bagit",
    "export_wacz",
    "read_id_file",
    "source_for",
    "write_report",
]
