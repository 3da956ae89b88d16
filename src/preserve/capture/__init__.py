"""Getting the bytes: the socket-level recording transport, HTTP fetch with redirects and
limits, the exchange records passed on to WARC writing, and capture-side provenance.

Nothing here writes to an archive; :mod:`preserve.archive` commits what capture produces.
"""
