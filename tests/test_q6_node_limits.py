"""NginxLimits: the arithmetic of data/node_limits.json and its validation (the real servers are in
test_q6_nginx_real.py and test_q6_node_limits_real.py)."""

from __future__ import annotations

import pytest

from sim.components.node_limits import PROCESS_NOFILE, NginxLimits, presets
from sim.core.errors import ParameterError


def test_stock_nginx_and_linux_defaults_come_from_the_preset():
    p = presets()
    assert NginxLimits().worker_connections == p["nginx"]["worker_connections"] == 512
    assert NginxLimits().proxied_websockets() == (512 - 2) // 2
    assert PROCESS_NOFILE == p["linux"]["nofile_soft"] == 1024
    assert all("source" in entry for entry in p.values())


def test_slots_scale_with_workers_and_listeners_take_their_share():
    one = NginxLimits(worker_connections=10_240)
    assert NginxLimits(worker_connections=10_240, worker_processes=4).proxied_websockets() == 4 * one.proxied_websockets()
    assert NginxLimits(worker_connections=10_240, listeners=3).proxied_websockets() == (10_240 - 4) // 2
    assert one.draining_from() < one.proxied_websockets()


@pytest.mark.parametrize("field, value", [("worker_connections", 0), ("worker_processes", -1), ("listeners", 0),
                                          ("worker_connections", 2), ("worker_processes", 1.5), ("listeners", True)])
def test_bad_limits_name_the_parameter(field, value):
    with pytest.raises(ParameterError) as err:
        NginxLimits(**{field: value})
    assert field in str(err.value)
