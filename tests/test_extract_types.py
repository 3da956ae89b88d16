"""Extractor 2.9.0: the weaker page types (forum, product, listing, collection), each change
on a small synthetic page made up for the test (no benchmark page)."""

from __future__ import annotations

from preserve.extract import extract

POSTS = [
    "Ich habe den Router gestern neu gestartet, aber die Verbindung bricht nach ein paar "
    "Minuten immer wieder ab, und im Protokoll steht nichts Auffälliges.",
    "Hast du schon versucht, die Firmware zu aktualisieren? Bei mir hat das genau dieses "
    "Problem gelöst, nachdem ich wochenlang herumprobiert hatte.",
    "Danke, das war es tatsächlich: nach dem Update läuft die Verbindung seit zwei Tagen "
    "stabil, und die Geschwindigkeit ist sogar besser geworden.",
]
SIGNATURE = "Mein Rechner: Ryzen 7, 32 GB RAM, zwei Bildschirme und viel zu viele Kabel"


def _thread(signature_class: str) -> str:
    posts = "".join(
        f'<div class="post" id="p{i}"><div class="postbody"><p class="author">Nutzer{i}</p>'
        f'<div class="content">{text}</div>'
        f'<div class="{signature_class}">{SIGNATURE} ({i})</div></div></div>'
        for i, text in enumerate(POSTS)
    )
    return (
        "<!DOCTYPE html><html lang=de><head><title>Verbindung bricht ab</title></head><body>"
        '<div id="page-body"><h2 class="topic-title">Verbindung bricht ab</h2>'
        f"{posts}</div></body></html>"
    )


def test_forum_signatures_are_not_post_text() -> None:
    # A signature under every post (phpBB ``signature``, XenForo ``message-signature``) is the
    # member's profile line, the same under each of their posts: not what the post says.
    for name in ("signature", "message-signature", "postsignature"):
        text = extract(_thread(name)).text
        for post in POSTS:
            assert post in text, name
        assert "Ryzen" not in text, name


def _thread_with_cards(card_class: str) -> str:
    posts = "".join(
        f'<article class="message message--post"><div class="message-inner">'
        f'<div class="message-cell {card_class}"><h4 class="message-name">Nutzer{i}</h4>'
        f"<div>Mitglied seit März 2019</div><dl><dt>Beiträge</dt><dd>{1200 + i}</dd></dl>"
        f"<dl><dt>Wohnort</dt><dd>Kleinstadt am See</dd></dl></div>"
        f'<div class="message-cell message-main"><div class="message-content">'
        f"<div class=\"bbWrapper\">{text}</div></div></div></div></article>"
        for i, text in enumerate(POSTS)
    )
    return (
        "<!DOCTYPE html><html lang=de><head><title>Verbindung bricht ab</title></head><body>"
        f'<div class="p-body"><h1>Verbindung bricht ab</h1>{posts}</div></body></html>'
    )


def test_forum_member_cards_are_not_post_text() -> None:
    # The member's card beside every post (XenForo ``message-user``, phpBB ``postprofile``,
    # ``user-details``, ``userinfo``): rank, join date and post count, not the post.
    for name in ("message-cell--user message-user", "postprofile", "user-details", "userinfo"):
        text = extract(_thread_with_cards(name)).text
        for post in POSTS:
            assert post in text, name
        assert "Mitglied seit" not in text, name
        assert "Kleinstadt" not in text, name
