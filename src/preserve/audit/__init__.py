"""Checking an archive: the verify audit, its finding-code catalogue, and repair of
interrupted captures.

Findings are data; nothing here captures or signs on its own.
"""
