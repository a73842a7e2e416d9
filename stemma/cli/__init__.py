"""The ``stemma`` command line."""
