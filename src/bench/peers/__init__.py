"""Published session-based models, run through the public model interface (bench.api)."""
