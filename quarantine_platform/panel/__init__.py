"""The customer-facing web panel (`qp panel`): pages and a JSON API over the published snapshots."""
