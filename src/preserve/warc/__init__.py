"""WARC files: writing a capture's records (:mod:`.write`) and reading them back (:mod:`.read`).

This package is the only place that imports warcio.
"""

from .read import (
    RecordCheck,
    check_warc,
    read_record_block,
    read_record_body,
    read_record_payload,
)
from .write import (
    CERTIFICATE_URI_PREFIX,
    PROVENANCE_URI_PREFIX,
    RENAMED_CONTENT_LENGTH,
    RENAMED_TRANSFER_ENCODING,
    TEXT_URI_PREFIX,
    RecordRef,
    WarcWriteResult,
    stored_response_head,
    write_capture,
    write_page,
)

__all__ = [
    "CERTIFICATE_URI_PREFIX",
    "PROVENANCE_URI_PREFIX",
    "RENAMED_CONTENT_LENGTH",
    "RENAMED_TRANSFER_ENCODING",
    "TEXT_URI_PREFIX",
    "RecordCheck",
    "RecordRef",
    "WarcWriteResult",
    "check_warc",
    "read_record_block",
    "read_record_body",
    "read_record_payload",
    "stored_response_head",
    "write_capture",
    "write_page",
]
