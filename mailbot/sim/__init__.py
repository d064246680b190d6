"""Stand-ins for the outside services mailbot talks to, for tests, demos and benchmarks."""
