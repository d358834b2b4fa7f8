"""Asset keys of the notification stream (design.md contract), shared by assets, checks and sensors."""

import dagster as dg

EVENTS = dg.AssetKey("notification_events")
DEAD_LETTERS = dg.AssetKey("notification_dead_letters")
COUNTS = dg.AssetKey("notification_counts_minutely")
