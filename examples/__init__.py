"""Sample batches (batch.toml + items), shipped with the package for `annotate demo`."""
