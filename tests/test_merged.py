"""The parts of a split audit merged as they come (``preserve.audit.merged``)."""

from __future__ import annotations

from preserve.audit.findings import Code, Report
from preserve.audit.merged import MergedChecks
from preserve.audit.verify import ManifestChecks, merge_checks

TEXT_A, TEXT_B = "ab" * 32, "cd" * 32


def part(cids: dict[str, str], *, warcs: set[str] = frozenset(), texts: set[str] = frozenset(),
         previous: list[tuple[str, str, str]] | None = None,
         digests: dict[str, tuple[str, str, int]] | None = None) -> ManifestChecks:
    return ManifestChecks([], {"manifests_checked": len(cids)}, set(warcs), set(texts),
                          dict(cids), set(), previous or [], digests or {})


def test_merged_parts_answer_as_the_in_memory_merge_does() -> None:
    parts = [
        part({"c1": "manifests/c1.json", "c2": "manifests/c2.json"},
             warcs={"archive/warc/a.warc.gz"}, texts={TEXT_A},
             previous=[("c2", "c9", "manifests/c2.json"), ("c2", "c1", "manifests/c2.json")],
             digests={"manifests/c1.json": ("s1", "b1", 10)}),
        part({"c3": "manifests/c3.json", "c1": "manifests/odd.json"},
             previous=[("c3", "c2", "manifests/c3.json"), ("c3", "c8", "manifests/c3.json")],
             digests={"manifests/c3.json": ("s3", "b3", 30)}),
        part({"c9": "manifests/c9.json"}, warcs={"archive/warc/\udcff.warc"}),
    ]
    expected, actual = Report(root="r", deep=False), Report(root="r", deep=False)
    in_memory = merge_checks(expected, parts)
    with MergedChecks(actual) as merged:
        for p in parts:
            merged.add(p)
        assert actual.findings == expected.findings
        assert [f.code for f in actual.findings] == [Code.E106]
        assert actual.stats.manifests_checked == 5
        dangling = [(c, p, r) for c, p, r in in_memory.previous
                    if p not in in_memory.capture_ids]
        # c9 is claimed by the last part: a previous link to it resolves at the end
        assert list(merged.dangling_previous()) == dangling == [("c3", "c8", "manifests/c3.json")]
        assert merged.names_warc("archive/warc/a.warc.gz")
        assert merged.names_warc("archive/warc/\udcff.warc")
        assert not merged.names_warc("archive/warc/b.warc.gz")
        assert merged.names_text(TEXT_A) and not merged.names_text(TEXT_B)
        assert dict(merged.checked) == in_memory.manifest_digests
        assert merged.checked.get("manifests/c3.json") == ("s3", "b3", 30)
        assert "manifests/c2.json" not in merged.checked and len(merged.checked) == 2


def test_many_parts_merge_with_claims_asked_in_batches() -> None:
    report = Report(root="r", deep=False)
    with MergedChecks(report) as merged:
        for at in range(0, 3000, 700):
            merged.add(part({f"c{i}": f"manifests/c{i}.json" for i in range(at, at + 1000)}))
        assert report.stats.manifests_checked == 5000
        # ids 0-3799, 5,000 claims: the 1,200 repeated ones are E106
        assert sum(f.code is Code.E106 for f in report.findings) == 5000 - 3800
        assert report.findings[0].message == \
            "capture id c700 is also claimed by manifests/c700.json"
