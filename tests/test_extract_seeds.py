"""The two seed pages: a WordPress-style blog post with reader comments, and a news-aggregator
page with breadcrumb, teaser, figure, share bar and headline lists. The expected texts are in
tests/fixtures/seeds/ (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from preserve.extract import Extraction, extract

SEEDS = Path(__file__).parent / "fixtures" / "seeds"


def _page(name: str) -> Extraction:
    return extract((SEEDS / f"{name}.html").read_bytes(), f"https://example.org/{name}")


def _expected(name: str) -> str:
    return (SEEDS / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def blog() -> Extraction:
    return _page("blog")


@pytest.fixture(scope="module")
def news() -> Extraction:
    return _page("news")


def test_blog_text_is_exactly_the_post(blog: Extraction) -> None:
    assert blog.text == _expected("blog.expected.txt")
    assert blog.reason is None


def test_blog_metadata(blog: Extraction) -> None:
    assert blog.title == "April 2011 Massacre at Camp Ashraf"
    assert blog.byline == "Lord Alton"
    assert blog.published == "2011-04-11T08:00:00+00:00"
    assert blog.language == "en-GB"


def test_blog_chrome_is_gone(blog: Extraction) -> None:
    for chrome in (
        "Recent Posts",
        "Archives",
        "Categories",
        "Leave a Reply",
        "Post Comment",
        "Share this",
        "Proudly powered",
        "Skip to content",
        "Post navigation",
        "Responses to",
        "Religious liberty in Pakistan",
        "Human Rights (148)",
    ):
        assert chrome not in blog.text, chrome
    assert not blog.text.startswith(blog.title or "-")


def test_blog_comments_are_apart_and_complete(blog: Extraction) -> None:
    assert blog.comments_text == _expected("blog.comments.expected.txt")
    assert len(blog.comments) == 8
    first = blog.comments[0]
    assert first.author == "Parviz K."
    assert first.date == "2011-04-11T09:14:00+00:00"
    assert first.text.startswith("Great article Lord Alton.")
    # The unnumbered replies keep their place after the comment they answer.
    assert blog.comments[2].text.startswith("Hello,\nI just read your article")
    assert blog.comments[-1].text.endswith("Respectfully Yours,\nRay Safar")
    for comment in blog.comments:
        assert comment.text not in blog.text
        assert comment.text.split("\n")[0] not in blog.text
    assert "Reply" not in blog.comments_text.split()


def test_news_text_is_exactly_the_article(news: Extraction) -> None:
    assert news.text == _expected("news.expected.txt")


def test_news_metadata(news: Extraction) -> None:
    assert news.title == "A massacre in Iraq that must have pleased Tehran"
    assert news.byline == "Sohrab Ahmari"
    assert news.published == "2013-12-09T14:52:10+00:00"
    assert news.language == "en-US"
    assert news.comments == ()
    assert news.comments_text == ""


def test_news_chrome_is_gone(news: Extraction) -> None:
    text = news.text
    assert text.startswith("The U.S. promised to ensure the safety")
    assert text.endswith("Mr. Ahmari is an assistant books editor at the Journal.")
    for chrome in (
        "Opinion",
        "Iran in the World Press",
        "Wall Street Journal: Sometime",
        "Enlarge Image",
        "Latest news",
        "Must read",
        "You might also like",
        "RELATED",
        "Recommended to you",
        "By Sohrab Ahmari",
        "We use cookies",
        "Subscribe",
        "Facebook",
        "Previous article",
        "Iran Is on the Brink",
        "Clinton welcomes Iran sanctions",
        "Getty Images",
        "2,417",
    ):
        assert chrome not in text, chrome
    # The teaser repeats the first sentence; the body must hold it exactly once.
    assert text.count("Sometime in the past six months") == 1


def test_seed_pages_are_self_contained() -> None:
    for name in ("blog", "news"):
        html = (SEEDS / f"{name}.html").read_text(encoding="utf-8")
        assert '<meta charset="utf-8">' in html
        assert '<link rel="stylesheet"' not in html
        assert 'src="http' not in html
