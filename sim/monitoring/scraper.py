"""A simulated Prometheus scraper: samples a run's registry every ``scrape_interval`` of simulated time.

Prometheus pulls: every ``scrape_interval`` (its configuration default is 1m; the sample
``prometheus.yml`` it ships sets 15s) it reads the target's ``/metrics`` and stores one sample
per series with the scrape's timestamp. Whatever happens between two scrapes is seen only
through what it leaves in the values: a counter keeps the count of a burst, but a gauge that
rose and fell back in between is never seen at its peak. Several scrapers with different
intervals can watch the same run, each with its own series.

The scraper is the metrics registry's own (:class:`sim.core.metrics.Scraper`, also started by
``Metrics.scrape_every``): one way to sample a run, here under the name question 5 uses.
"""

from sim.core.metrics import Scraper

__all__ = ["Scraper"]
