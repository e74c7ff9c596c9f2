#!/usr/bin/env bash
# Regenerates config/monitoring/prometheusrule.yaml from
# config/monitoring/prometheus/flux-reporter.rules.yaml (the one source of the alert rules).
set -euo pipefail
cd "$(dirname "$0")/.."
UPDATE_GENERATED=1 cargo test -q -p flux-reporter-e2e --test monitoring \
  prometheus_rule_is_generated_from_the_rules_file
