"""The demo workflow ``stemma demo`` (and ``make run``) loads into a store."""
