"""Monitoring the way production does it (question 5): a simulated Prometheus scraper, PromQL's
``rate``/``increase``/``histogram_quantile``, and (in their own modules) the live ``/metrics``
exporter, structured logs and traces in simulated time."""
