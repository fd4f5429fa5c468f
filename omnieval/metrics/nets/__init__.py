"""Feature networks used by metrics (built in code; weights come from the manifest, never downloaded)."""
