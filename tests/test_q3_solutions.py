"""The solutions of notebook 03 (WebSockets vs webhooks) give the right answers."""

import pytest

import sim
from sim.components.webhook import EPOCH, OK, derive_secret, sign, verify

SEED = 20261124  # the test suite's one seed, as in test_queue.py


@pytest.fixture(scope="module")
def q3(load_solutions):
    return load_solutions("03_websockets_vs_webhooks_solutions")


SECRET = derive_secret(SEED)
BODY = b'{"id":"evt_42","type":"charge.succeeded"}'
GOOD = sign(SECRET, EPOCH, BODY)
CASES = [
    (GOOD, BODY, EPOCH + 10),
    (GOOD, BODY, EPOCH + 300),
    (GOOD, BODY, EPOCH + 301),                          # stale
    (GOOD, BODY + b" ", EPOCH),                         # tampered body
    (GOOD.replace(f"t={EPOCH}", f"t={EPOCH + 1}"), BODY, EPOCH),   # tampered timestamp
    (GOOD + "," + sign(derive_secret(1), EPOCH, BODY).split(",")[1], BODY, EPOCH),  # rotation
    (sign(derive_secret(1), EPOCH, BODY), BODY, EPOCH),  # wrong secret
    ("", BODY, EPOCH), ("t=x,v1=00", BODY, EPOCH), ("v1=00", BODY, EPOCH),
]


@pytest.mark.parametrize("header, body, now", CASES)
def test_exercise_1_agrees_with_the_simulators_verifier(q3, header, body, now):
    assert q3.verify_signature(SECRET, header, body, now) == (verify(SECRET, header, body, now) == OK)


def test_exercise_2_crossover_separates_the_two_regimes(q3):
    rate = q3.crossover_rate(seed=SEED)
    post = q3.post_connection_seconds(seed=SEED)
    assert 0.2 < post < 1.0  # 2 set-up round trips + POST at 0.1 s each, plus a 0.1 s handler on average
    assert rate == pytest.approx(1 / post)

    def per_event(transport, r):
        return sim.run("push-vs-webhook", seed=SEED, transport=transport, event_rates=(r,),
                       **q3.CROSSOVER).summary.connection_seconds_per_event.iloc[0]

    assert per_event("websocket", rate / 3) > per_event("webhook", rate / 3)
    assert per_event("websocket", rate * 3) < per_event("webhook", rate * 3)
