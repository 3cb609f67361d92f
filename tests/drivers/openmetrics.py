"""Parses OpenMetrics text (stdin) with the Prometheus Python client's
strict parser, which raises on anything the format does not allow, and
prints every sample as JSON: [{"family", "type", "name", "labels", "value"}].
Used by tests/metrics.rs to read `GET /metrics` as Prometheus would."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append(
            {
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": sample.value,
            }
        )
json.dump(samples, sys.stdout)
