"""Getting the bytes: the socket-level recording transport, HTTP fetch with redirects and
limits, the exchange records passed on to WARC writing, capture-side provenance, and browser
capture (Chromium through Playwright, every request recorded by a local proxy on the same
transport, with an ephemeral interception CA).

Nothing here writes to an archive; :mod:`preserve.archive` commits what capture produces.
"""
