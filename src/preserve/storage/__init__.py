"""Where and how an archive keeps things: the on-disk layout and safe paths, the
content-addressed text store, manifests, and derived indexes.

Nothing here fetches, extracts or audits.
"""
