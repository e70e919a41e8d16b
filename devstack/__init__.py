"""Development-only machinery: a throwaway Postgres, osmem-server and the demo.

Used by the tests, `make demo` and `bench/`; it is not part of the flusso package.
"""
