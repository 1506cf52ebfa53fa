"""Analysis: metrics, statistics and tables, read from run and study folders only."""
