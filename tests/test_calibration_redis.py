"""broker-fanout's brokers against a real redis-server (started here on 127.0.0.1, always stopped)."""

from __future__ import annotations

import pytest

pytest.importorskip("redis", reason="redis-py is not installed (pip install -r requirements.txt)")

from sim.calibration import redis_broker as rb  # noqa: E402
from sim.core.errors import ParameterError  # noqa: E402

try:
    rb.redis_server_path()
    MISSING = ""
except rb.RedisUnavailable as error:
    MISSING = str(error)

needs_redis = pytest.mark.skipif(bool(MISSING), reason=MISSING or "redis-server present")


@pytest.fixture
def redis_port(request):
    """A private redis-server without output-buffer limits; stopped by the finalizer even on failure."""
    manager = rb.redis_server((0, 0, 0), time_limit=120)
    port, _log = manager.__enter__()
    request.addfinalizer(lambda: manager.__exit__(None, None, None))
    return port


@needs_redis
def test_the_server_is_private_and_without_persistence(redis_port):
    import redis

    r = redis.Redis(host="127.0.0.1", port=redis_port, socket_timeout=5, decode_responses=True)
    try:
        assert r.config_get("bind")["bind"] == "127.0.0.1"
        assert r.config_get("save")["save"] == ""
        assert r.config_get("appendonly")["appendonly"] == "no"
    finally:
        r.close()


@needs_redis
def test_absent_subscriber_gets_nothing_and_a_stream_group_replays(redis_port):
    result = rb.run_absence(redis_port)
    assert result["pubsub"]["received_of_those"] == 0  # at most once: nothing kept for the absent
    assert result["pubsub"]["receivers_counted_by_publish_while_away"] == 0  # PUBLISH says nobody got them
    assert result["pubsub"]["received_before"] == result["pubsub"]["received_after"] == 20
    stream = result["stream"]
    assert stream["received_of_those"] == stream["published_while_away"]  # replayed from the last delivered id
    assert stream["redelivered_unacked"] == stream["unacked_before_leaving"]  # at least once
    assert stream["pending_after"] == 0
    model = rb.model_absence()
    assert model["pubsub"]["lost_disconnected"] == model["pubsub"]["disconnected_at_publish"] > 0
    assert model["log"]["lost_disconnected"] == 0


@needs_redis
def test_slow_subscriber_is_cut_by_the_limit_and_the_model_explains_when():
    setup = rb.SlowSubscriberSetup(duration=8.0)
    run = rb.run_slow_subscriber(setup)
    assert "output buffer limits" in run.log_line  # Redis itself says why it closed the client
    assert run.cut_s == run.cut_s and run.cut_s < setup.duration
    assert run.fast_received == len(run.publish_s)  # the fast subscriber missed nothing
    assert run.slow_received < len(run.publish_s)  # the slow one missed what came after the cut
    model = rb.model_slow_subscriber(run)
    assert model["fast_received"] == len(run.publish_s)
    # Redis counts only its own output buffer; the kernel's socket buffers held more before it
    # grew, so the real cut comes later than the model's, never earlier ...
    assert run.cut_s > model["cut_s"]
    # ... and the model with those measured bytes added to the limits cuts when Redis did, to
    # within the monitor's polling period (10 ms) plus one publishing tick and a scheduling slack.
    corrected = rb.model_with_kernel_buffers(run)
    assert abs(corrected["cut_s"] - run.cut_s) < 0.1


def test_setup_validation_names_the_parameter():
    with pytest.raises(ParameterError, match="rate"):
        rb.SlowSubscriberSetup(rate=0)
    with pytest.raises(ParameterError, match="duration"):
        rb.SlowSubscriberSetup(duration=1000)
