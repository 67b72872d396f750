"""The benchmarks of `make bench`: AWS calls, cost, overhead, cold start, throughput, ETA."""
