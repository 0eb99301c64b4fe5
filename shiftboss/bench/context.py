"""What every workload uses: the world, one API client, the metrics scraper, the watch
on the served namespace's Jobs, and the sizes."""

from __future__ import annotations

from dataclasses import dataclass

from shiftboss.bench.apiserver_metrics import Breakdown, Counts, MetricsScraper, breakdown, diff
from shiftboss.bench.cluster import BenchCluster
from shiftboss.bench.creator import Created
from shiftboss.bench.recorder import Recorder
from shiftboss.bench.sizes import Sizes
from shiftboss.kube import KubeClient


@dataclass
class Bench:
    world: BenchCluster
    client: KubeClient
    scraper: MetricsScraper
    jobs: Recorder
    sizes: Sizes
    created: Created

    async def requests_since(self, before: Counts) -> Breakdown:
        """The API server's requests since the scrape ``before``, sorted by kind."""
        return breakdown(diff(before, await self.scraper.scrape()))
