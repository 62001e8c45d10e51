"""Calibration: the model against real servers on loopback (see sim.calibration.reconnect)."""
