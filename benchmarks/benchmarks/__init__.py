"""asv benchmarks of d2fast: graph build, forward, select and the end-to-end prune."""
