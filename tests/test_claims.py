"""The claims ledger (data/claims.json) stays honest: quotes, sections, scenarios, checks, tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sim import claims as ledger
from sim.claims import (NOT_MEASURED, VERDICTS, ClaimNotSupported, LedgerError, course_text, load_claims,
                        notebook_defaults, notebook_dir, notebook_headings, parse_claims, run_check, verdict_table)

CLAIMS = load_claims()
MEASURED = [c for c in CLAIMS if c.measured]
NOTEBOOKS = sorted({c.notebook for c in CLAIMS})


# --- the ledger itself ----------------------------------------------------------------------------
def test_every_part_of_every_answer_has_claims():
    parts = {c.part for c in CLAIMS}
    expected = {f"{q}{p}" for q, letters in {1: "ABC", 2: "AB", 3: "ABC", 4: "ABC", 5: "ABC", 6: "AB", 7: "AB"}.items()
                for p in letters}
    assert parts == expected
    assert len(CLAIMS) >= 35
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    assert [c.id for c in CLAIMS] == sorted((c.id for c in CLAIMS), key=lambda i: (i[:2], int(i[3:])))


def test_claims_are_frozen_with_the_documented_attributes():
    c = CLAIMS[0]
    assert ledger.FIELDS == ("id", "question", "part", "fr", "en", "verdict", "reason", "notebook", "section",
                             "scenario", "check")
    with pytest.raises(AttributeError):
        c.verdict = "holds"  # type: ignore[misc]
    assert load_claims() == CLAIMS  # a copy each time, same content


def _course():
    from sim.core.errors import UserError

    try:
        return course_text()
    except UserError as err:
        pytest.skip(f"the course text is not on this machine: {err}")


@pytest.mark.parametrize("claim", CLAIMS, ids=lambda c: c.id)
def test_french_text_is_quoted_verbatim(claim):
    assert claim.fr in _course(), f"{claim.id}: {claim.fr!r} is not in the course text"


def test_measured_claims_name_a_section_and_a_registered_scenario():
    from sim import catalog

    scenarios = {s["name"] for s in catalog.load()["scenarios"]}
    for c in CLAIMS:
        assert (notebook_dir() / c.notebook).is_file(), f"{c.id}: no notebook {c.notebook}"
        assert c.section in notebook_headings(c.notebook), f"{c.id}: no heading {c.section!r} in {c.notebook}"
        if c.measured:
            assert c.scenario in scenarios, f"{c.id}: scenario {c.scenario!r} is not registered"
            assert callable(ledger.resolve_check(c)), c.id
        else:
            assert c.check == ""


def test_not_measured_claims_are_few_and_say_why():
    missing = [c for c in CLAIMS if not c.measured]
    assert len(missing) <= len(CLAIMS) // 5
    assert all(len(c.reason) > 20 for c in missing)


# --- the notebooks' closing tables say what the ledger says ----------------------------------------
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_what_to_add_table_agrees_with_the_ledger(notebook):
    table = verdict_table(notebook)
    expected = {c.id: c.verdict for c in CLAIMS if c.notebook == notebook}
    assert table == expected


def test_verdict_table_reads_rows_after_the_heading(tmp_path, monkeypatch):
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "| 9Z | not a row |\n"},
                    {"cell_type": "markdown", "metadata": {},
                     "source": "## 6 · What to add to the course's answer\n\n| claim | verdict |\n| --- | --- |\n"
                               "| 3B-2 | half true | x |\n| 3B-3 | holds |\n"}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "x.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    monkeypatch.setattr(ledger, "notebook_dir", lambda: tmp_path)
    assert verdict_table("x.ipynb") == {"3B-2": "half true", "3B-3": "holds"}


# --- validation: one line naming the claim and the field -------------------------------------------
def _entry(**changes):
    entry = {"id": "3B-6", "question": 3, "part": "3B", "fr": "Pas de connexion persistante (léger)", "en": "Light",
             "verdict": "half true", "reason": "a reason", "notebook": "03_websockets_vs_webhooks.ipynb",
             "section": "a section", "scenario": "push-vs-webhook", "check": "sim.claims_checks.q3b_webhook_simple_post"}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not ...}


@pytest.mark.parametrize("changes, words", [
    (dict(verdict="true"), ["claim 3B-6", "'verdict'", "holds with a condition"]),
    (dict(part="3C"), ["claim 3B-6", "'part'"]),
    (dict(question="3"), ["claim 3B-6", "'question'", "integer"]),
    (dict(id="3-B6"), ["'id'", "3B-2"]),
    (dict(check=""), ["claim 3B-6", "'check'", "not measured yet"]),
    (dict(verdict=NOT_MEASURED), ["claim 3B-6", "'check'", "empty"]),
    (dict(reason="two\nlines"), ["claim 3B-6", "'reason'", "one line"]),
    (dict(notebook="notebooks/03.ipynb"), ["claim 3B-6", "'notebook'"]),
    (dict(scenario=...), ["claim 3B-6", "'scenario'", "missing"]),
    (dict(colour="red"), ["claim 3B-6", "'colour'"]),
])
def test_bad_entries_are_refused_in_one_line(changes, words):
    with pytest.raises(LedgerError) as err:
        parse_claims(json.dumps([_entry(**changes)]))
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_duplicate_ids_and_bad_files_are_refused():
    with pytest.raises(LedgerError, match="claim 3B-6: field 'id' is used twice"):
        parse_claims(json.dumps([_entry(), _entry()]))
    with pytest.raises(LedgerError, match="not JSON"):
        parse_claims("[{")
    with pytest.raises(LedgerError, match="list of claims"):
        parse_claims('{"x": 1}')
    assert parse_claims(json.dumps({"claims": [_entry()]}))[0].id == "3B-6"


def test_a_check_that_names_nothing_is_reported():
    claim = parse_claims(json.dumps([_entry(check="sim.claims_checks.no_such_check")]))[0]
    with pytest.raises(LedgerError, match="3B-6: field 'check'"):
        run_check(claim)


def test_notebook_defaults_come_from_the_parameters_cell():
    d = notebook_defaults("07_client_resilience.ipynb")
    assert d["SEED"] == 1 and d["CLIENTS"] > d["REPLICATED_CLIENTS"] > 0
    assert all(name.isupper() for name in d)


# --- every verdict's check runs and passes ---------------------------------------------------------
# one test per claim; the claims of one scenario share its runs (cached per process), so they go to
# one worker (pyproject's --dist loadgroup)
@pytest.mark.parametrize("claim", [pytest.param(c, id=c.id, marks=pytest.mark.xdist_group(c.scenario))
                                   for c in MEASURED])
def test_check_supports_the_verdict(claim):
    evidence = run_check(claim)
    assert isinstance(evidence, str) and evidence and "\n" not in evidence


def test_require_fails_with_its_evidence():
    from sim.claims_checks import over, require

    a, b = over("a", [1.0, 1.1, 0.9]), over("b", [1.05, 1.0, 1.1])
    with pytest.raises(ClaimNotSupported, match=r"a 1 \[.*\]; b"):
        require(a.below(b), a, b)  # overlapping intervals: not "below"
    assert over("z", [0, 0, 0]).none() and not over("z", [0, 0, 1]).none()
    with pytest.raises(ClaimNotSupported, match="not measured in every replication"):
        over("n", [1.0, float("nan")])


# --- python -m sim claims --------------------------------------------------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sim", "claims", *args], capture_output=True, text=True, timeout=120)


def test_cli_lists_claims_with_verdicts():
    out = _cli("--question", "7")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("7B-2") and "half true" in line for line in lines)
    assert lines[-1].startswith(f"{sum(c.question == 7 for c in CLAIMS)} claims:")


def test_cli_runs_a_check():
    out = _cli("3B-5", "--check")
    assert out.returncode == 0, out.stderr
    assert "PASS" in out.stdout and "every check passed" in out.stdout


@pytest.mark.parametrize("args, words", [
    (("9Z-1",), "unknown claim '9Z-1'"),
    (("--question", "8"), "--question: must be 1 to 7"),
    (("--verdict", "true"), "--verdict: must be one of"),
])
def test_cli_bad_input_is_one_line_exit_2(args, words):
    out = _cli(*args)
    assert out.returncode == 2
    assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_cli_broken_ledger_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "claims.json"
    bad.write_text(json.dumps([_entry(verdict="sort of")]), encoding="utf-8")
    out = _cli("--ledger", str(bad))
    assert out.returncode == 2
    assert "claim 3B-6: field 'verdict'" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_every_verdict_is_known():
    assert {c.verdict for c in CLAIMS} <= set(VERDICTS)
