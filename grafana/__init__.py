"""alloysync's Grafana dashboards, generated from code (see `grafana.generate`)."""
