"""The Transactions page's list as the ledger serves it: every transaction reachable a page at a time, in a stable
order, with the true count; a search that looks where the user wrote."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from models import BankAccount, LedgerTransaction
from services.container import Container
from services.db import unit_of_work
from services.errors import InputError
from services.ledger import MAX_TAGS, edit_transaction
from services.ledger_listing import PAGE_SIZE, list_transactions
from tests.integration.sync_helpers import make_user

DAY = date(2025, 3, 15)


def add_ledger(c: Container, user_id: uuid.UUID, names: list[str], *, per_day: int = 3) -> list[str]:
    """The user's transactions named ``names``, ``per_day`` of them on each day going back from DAY; their ids
    in the order the page lists them (newest day first, then id)."""
    batch = uuid.uuid4().hex[:8]
    with unit_of_work(c.engine) as s:
        account = BankAccount(
            user_id=user_id, plaid_account_id=f"acc-{uuid.uuid4()}", name="Everyday", type="depository"
        )
        s.add(account)
        s.flush()
        rows = [
            LedgerTransaction(
                plaid_transaction_id=f"{batch}-{(i * 7919) % 100_003:06d}",  # not in date order: ties go by id
                user_id=user_id,
                account_id=account.id,
                amount_minor=-(100 + i),
                iso_currency_code="USD",
                date=DAY - timedelta(days=i // per_day),
                name=name,
            )
            for i, name in enumerate(names)
        ]
        s.add_all(rows)
        return [
            t.plaid_transaction_id for t in sorted(rows, key=lambda t: (-t.date.toordinal(), t.plaid_transaction_id))
        ]


def test_all_597_transactions_are_counted_and_reachable_a_page_at_a_time(container: Container) -> None:
    user = make_user(container)
    order = add_ledger(container, user, [f"SHOP {i}" for i in range(597)])
    first = list_transactions(container, user)
    assert (first.total, first.position, len(first)) == (597, 1, PAGE_SIZE)
    assert [t.transaction_id for t in first] == order[:500] and first.older is not None
    second = list_transactions(container, user, start=first.older)
    assert (second.total, second.position, len(second)) == (597, 501, 97)
    assert [t.transaction_id for t in second] == order[500:] and second.older is None
    assert list_transactions(container, user, start=second.newer) == first  # Newer goes back to the first page

    # The bot brings a newer transaction meanwhile: the page the user is on stays where it was, one place further.
    add_ledger(container, user, ["BRAND NEW"])
    again = list_transactions(container, user, start=first.older)
    assert [t.transaction_id for t in again] == order[500:] and (again.total, again.position) == (598, 502)


def test_walking_older_to_the_end_and_newer_back_shows_each_transaction_once_in_a_stable_order(
    container: Container,
) -> None:
    user = make_user(container)
    order = add_ledger(container, user, [f"SHOP {i}" for i in range(40)], per_day=4)
    pages, start = [], None
    while True:
        page = list_transactions(container, user, start=start, limit=7)
        pages.append(page)
        assert page.total == 40 and page.position == 1 + 7 * (len(pages) - 1)
        if page.older is None:
            break
        start = page.older
    assert [t.transaction_id for p in pages for t in p] == order  # every one once, newest first, ties by id
    back = [pages[-1]]
    while back[-1].position > 1:
        back.append(list_transactions(container, user, start=back[-1].newer, limit=7))
    assert back == pages[::-1]


def test_a_transaction_a_sync_adds_just_past_the_page_shown_is_on_the_next_page(container: Container) -> None:
    """The user reads page 1; a sync adds a transaction that sorts right after its last row (same day, next id).
    Older starts after the last row the user saw, so that one is listed, not skipped."""
    user = make_user(container)
    order = add_ledger(container, user, [f"SHOP {i}" for i in range(12)], per_day=12)  # one day: ties go by id
    first = list_transactions(container, user, limit=5)
    between = order[4] + "a"  # after the last row shown, before what was the next one
    assert order[4] < between < order[5]
    with unit_of_work(container.engine) as s:
        account = s.get(LedgerTransaction, order[0])
        assert account is not None
        s.add(LedgerTransaction(plaid_transaction_id=between, user_id=user, account_id=account.account_id,
                                amount_minor=-1, iso_currency_code="USD", date=DAY, name="JUST SYNCED"))  # fmt: skip
    second = list_transactions(container, user, start=first.older, limit=5)
    assert [t.transaction_id for t in second] == [between, *order[5:9]] and second.position == 6


def test_a_page_whose_rows_are_gone_shows_the_last_page_there_is(container: Container) -> None:
    user = make_user(container)
    order = add_ledger(container, user, [f"SHOP {i}" for i in range(12)])
    start = list_transactions(container, user, limit=5).older
    with unit_of_work(container.engine) as s:  # the bank removed everything from there on
        for tid in order[5:]:
            s.delete(s.get(LedgerTransaction, tid))
    page = list_transactions(container, user, start=start, limit=5)
    assert [t.transaction_id for t in page] == order[:5] and (page.total, page.position) == (5, 1)


def test_a_search_looks_at_the_users_own_category_note_and_tags_in_any_case(container: Container) -> None:
    user, other = make_user(container), make_user(container, "zed@example.com")
    names = {
        "cafe": "CAFE",
        "books": "BOOKSHOP",
        "gym": "GYM",
        "juice": "100% JUICE",
        "plain": "100 JUICE",
        "under": "A_B",
    }
    ids = dict(zip(names, add_ledger(container, user, list(names.values()), per_day=1), strict=True))  # newest first
    edit_transaction(container, user, ids["cafe"], category="Gifts for Mum")
    edit_transaction(container, user, ids["books"], note="Birthday present for SAM")
    edit_transaction(container, user, ids["gym"], tags=["Health", "Work"])
    theirs = add_ledger(container, other, ["GIFTS"])
    edit_transaction(container, other, theirs[0], note="birthday", tags=["health"])

    def found(search: str) -> list[str]:
        listed = {t.transaction_id for t in list_transactions(container, user, search=search)}
        return sorted(k for k, v in ids.items() if v in listed)

    assert found("gifts") == ["cafe"]  # her category
    assert found("sam") == found("BIRTHDAY") == ["books"]  # her note
    assert found("health") == found("WORK") == ["gym"]  # her tags
    assert found("health, work") == found("Health,Work") == found("health ,work") == ["gym"]  # as the page shows them
    assert found("0% j") == ["juice"]  # % and _ are what she typed, not wildcards
    assert found("_") == ["under"]
    assert found("nothing like it") == []
    assert list_transactions(container, user, search="juice").total == 2  # the count is of what matches


def test_a_search_finds_the_banks_category_shown_in_the_grid_too(container: Container) -> None:
    user = make_user(container)
    cafe, _shop = add_ledger(container, user, ["BLUE BOTTLE", "HARDWARE STORE"])
    with unit_of_work(container.engine) as s:
        row = s.get(LedgerTransaction, cafe)
        assert row is not None
        row.category_detailed = "FOOD_AND_DRINK_COFFEE"  # shown as "Food and drink: coffee"
    assert [t.transaction_id for t in list_transactions(container, user, search="Coffee")] == [cafe]
    for shown in (
        "Food and drink · Coffee",
        "food and drink",
        "drink coffee",
        "DRINK · COFFEE",
    ):  # as the grid writes it
        assert [t.transaction_id for t in list_transactions(container, user, search=shown)] == [cafe], shown
    assert list_transactions(container, user, search="food coffee").total == 0  # words in the order shown


def test_a_search_ignores_case_and_accents_in_every_alphabet(container: Container) -> None:
    """SQLite's own ``lower()`` and ``LIKE`` fold ASCII letters only: "café" must still find "CAFÉ DU MONDE", and, as
    a person types it, so must "cafe" (a keyboard without the accent, a bank that dropped it)."""
    user = make_user(container)
    names = {"cafe": "CAFÉ DU MONDE", "greek": "Ταβέρνα ΣΟΦΙΑ", "shop": "Ölkännchen Shop", "plain": "CAFE NOIR",
             "polish": "PIEKARNIA ŁÓDŹ", "nfd": "Cafe\u0301 Bleu", "other": "CORNER SHOP",
             "danish": "ÆBLEHAVEN", "french": "Cœur de Bœuf"}  # fmt: skip
    ids = dict(zip(names, add_ledger(container, user, list(names.values()), per_day=1), strict=True))
    edit_transaction(container, user, ids["plain"], note="Straße Nord")

    def found(search: str) -> list[str]:
        listed = {t.transaction_id for t in list_transactions(container, user, search=search)}
        return sorted(k for k, v in ids.items() if v in listed)

    assert found("café") == found("Café") == found("cafe") == found("CAFE") == ["cafe", "nfd", "plain"]
    assert found("café du") == found("cafe du") == ["cafe"]
    assert found("cafe\u0301 bleu") == found("cafe bleu") == ["nfd"]  # a mark typed on its own is no letter
    assert found("ταβερνα") == found("ΤΑΒΈΡΝΑ") == found("σοφια") == ["greek"]
    assert found("ölk") == found("ÖLKÄNN") == found("olkann") == ["shop"]
    assert found("lodz") == found("Łódź") == ["polish"]
    assert found("STRAßE") == found("strasse") == ["plain"]  # the user's note, however she spells it
    assert found("æble") == found("AEBLE") == ["danish"] and found("coeur de boeuf") == found("CŒUR") == ["french"]
    assert found("caf") == ["cafe", "nfd", "plain"] and found("shop") == ["other", "shop"]
    assert found("caf%") == found("_afe") == []  # the wildcards are letters to find, not patterns


@pytest.mark.parametrize("name", ["ΤΑΒΕΡΝΑ ΣΟΦΙΑΣ", "İSTANBUL KEBAP", "Straße"])
def test_a_name_typed_as_the_bank_wrote_it_finds_itself(container: Container, name: str) -> None:
    """Python and PostgreSQL lower some letters differently (a word's last "Σ", "İ"): the search and the names
    are lowered by the same database function, so a name typed exactly as shown is found on both databases."""
    user = make_user(container)
    (tid,) = add_ledger(container, user, [name], per_day=1)
    for typed in (name, name.split(maxsplit=1)[0]):
        assert [t.transaction_id for t in list_transactions(container, user, search=typed)] == [tid], typed


def test_a_search_with_a_nul_or_a_bidi_mark_finds_what_the_same_search_without_finds(container: Container) -> None:
    """Stored text has NULs and bidi controls cleaned out, so a search is cleaned the same way: PostgreSQL takes no
    NUL at all (it used to fail the page there), and "book" pasted with a stray mark still finds the bookshop."""
    user = make_user(container)
    shop, _cafe = add_ledger(container, user, ["BOOKSHOP", "CAFE"])
    for typed in ("book\x00", "bo\u202eok", "\u2066book\u2069", "book"):
        assert [t.transaction_id for t in list_transactions(container, user, search=typed)] == [shop], repr(typed)


def test_tags_are_trimmed_after_their_commas_go_and_counted_once(container: Container) -> None:
    user = make_user(container)
    [tid] = add_ledger(container, user, ["GYM"])
    assert edit_transaction(container, user, tid, tags=[" , ", "a,", "a", "b, c"]).tags == ("a", "b c")
    assert edit_transaction(container, user, tid, tags=["x"] * 25).tags == ("x",)  # one tag, typed 25 times
    with pytest.raises(InputError):
        edit_transaction(container, user, tid, tags=[f"t{n}" for n in range(MAX_TAGS + 1)])


def _name_accounts(container: Container, maple: str, harbor: str, theirs: str) -> None:
    """The accounts of these transactions as the bank names them: a Maple Credit Union card (for the user and for
    someone else) and a Harbor National checking account."""
    with unit_of_work(container.engine) as s:
        for tid, (bank, name, mask) in (
            (maple, ("Maple Credit Union", "Rewards Card", "2938")),
            (harbor, ("Harbor National", "Everyday Checking", "5543")),
            (theirs, ("Maple Credit Union", "Rewards Card", "2938")),
        ):
            row = s.get(LedgerTransaction, tid)
            assert row is not None
            account = s.get(BankAccount, row.account_id)
            assert account is not None
            account.institution_name, account.name, account.mask = bank, name, mask


def test_a_search_finds_what_the_account_column_shows_bank_name_and_last_four(container: Container) -> None:
    user, other = make_user(container), make_user(container, "zed@example.com")
    maple = add_ledger(container, user, ["COFFEE", "BOOKS"])
    harbor = add_ledger(container, user, ["TRAIN"])
    theirs = add_ledger(container, other, ["MAPLE SYRUP CO"])
    _name_accounts(container, maple[0], harbor[0], theirs[0])

    def found(search: str) -> set[str]:
        return {t.transaction_id for t in list_transactions(container, user, search=search)}

    assert found("maple") == found("REWARDS card") == found("2938") == set(maple)  # never zed's
    assert found("harbor") == found("5543") == found("checking") == set(harbor)
    assert found("credit union coffee") == set()


def test_a_search_for_the_account_as_the_grid_shows_it_finds_that_accounts_rows(container: Container) -> None:
    """The Account column reads "Rewards Card ••2938 (Maple Credit Union)": a person who typed or pasted that, or
    "••2938", was told nothing matched, though "2938" alone found the rows."""
    user, other = make_user(container), make_user(container, "zed@example.com")
    maple = add_ledger(container, user, ["COFFEE"])
    harbor = add_ledger(container, user, ["TRAIN"])
    theirs = add_ledger(container, other, ["MAPLE SYRUP CO"])
    _name_accounts(container, maple[0], harbor[0], theirs[0])

    def found(search: str) -> set[str]:
        return {t.transaction_id for t in list_transactions(container, user, search=search)}

    assert found("Rewards Card ••2938 (Maple Credit Union)") == set(maple)  # never zed's
    assert found("rewards card ••2938") == found("••2938") == set(maple)
    assert found("Everyday Checking ••5543") == set(harbor)
    assert found("Rewards Card ••2938 (Harbor National)") == set()
