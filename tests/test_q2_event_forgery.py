"""event-forgery: what each defence stops, and what it does not."""

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.components.security.validation import MALFORMED, OK, OVERSIZED, SPOOFED, bound_sender, validate
from sim.components.security.replay import event_body
from sim.core import ParameterError

SEED = 20261124
SMALL = dict(clients=4, event_rate=0.3, attack_rate=1.0, horizon=400.0, tolerance=200.0)


@pytest.fixture(scope="module")
def result():
    return sim.run("event-forgery", seed=SEED, **SMALL).summary.set_index("defences")


def test_validation_unit():
    ok = event_body("e1", "alice", "room-1", "hi")
    assert validate(ok, 1000) == (OK, {"id": "e1", "sender": "alice", "channel": "room-1", "data": "hi"})
    assert validate(event_body("e1", "alice", "room-1", "x" * 2000), 1000)[0] == OVERSIZED
    assert validate(event_body("e1", "alice", "room-1", "x" * 1001), 10_000)[0] == MALFORMED  # schema: 1000 max
    assert validate(b'{"id":"e","sender":"a","channel":"room-1","data":1}', 1000)[0] == MALFORMED
    assert validate(b"\xff not json", 1000)[0] == MALFORMED
    assert bound_sender({"sender": "alice"}, "mallory") == SPOOFED


def test_no_defence_accepts_everything(result):
    none = result.loc["none"]
    assert none.forged_accepted > 0 and none.replayed_accepted > 0 and none.tampered_accepted > 0


def test_signatures_stop_tampering_but_not_a_lying_client(result):
    sig = result.loc["signature"]
    assert sig.tampered_accepted == 0
    assert sig.forged_accepted > 0  # mallory's own oversized/malformed events are validly signed
    assert sig.replayed_accepted > 0  # a copy is still validly signed


def test_tls_stops_the_on_path_attacker_not_mallory(result):
    tls = result.loc["tls"]
    assert tls.tampered_accepted == 0
    assert tls.forged_accepted > 0 and tls.replayed_accepted > 0


def test_the_replay_window_rejects_every_copy(result):
    assert result.loc["replay_window"].replayed_accepted == 0


def test_no_defence_ever_rejects_an_honest_event(result):
    assert (result.honest_rejected == 0).all()


def test_a_shared_signing_key_lets_mallory_sign_as_anyone():
    s = sim.run("event-forgery", seed=SEED, **SMALL, signing_key="shared", attacks="spoofed",
                defences="signature+replay_window,binding+signature+replay_window").summary.set_index("defences")
    assert s.loc["signature+replay_window"].forged_accepted > 0
    assert s.loc["binding+signature+replay_window"].forged_accepted == 0


@settings(max_examples=6, deadline=None)
@given(attacks=st.lists(st.sampled_from(["spoofed", "oversized", "malformed", "replayed"]), min_size=1, unique=True),
       tamper=st.floats(0, 1), capture=st.floats(0, 1), key=st.sampled_from(["per_user", "shared"]))
def test_with_every_defence_nothing_forged_or_replayed_is_applied(attacks, tamper, capture, key):
    s = sim.run("event-forgery", seed=SEED, **SMALL, attacks=",".join(attacks), tamper_share=tamper,
                capture_share=capture, signing_key=key, defences="all,signature").summary.set_index("defences")
    a = s.loc["all"]
    assert a.forged_accepted == 0 and a.replayed_accepted == 0 and a.honest_rejected == 0
    assert s.loc["signature"].tampered_accepted == 0  # signatures alone: zero tampered events accepted


def test_same_seed_same_result():
    a = sim.run("event-forgery", seed=5, **SMALL, defences="none,all")
    b = sim.run("event-forgery", seed=5, **SMALL, defences="none,all")
    assert a.summary.equals(b.summary)


def test_bad_parameters():
    for bad in (dict(defences="antivirus"), dict(attacks="phishing"), dict(horizon=100.0)):
        with pytest.raises(ParameterError):
            sim.run("event-forgery", seed=1, **bad)
