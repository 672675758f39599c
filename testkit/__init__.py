"""What the tests and the benchmarks share: clinical vignettes as data (``casekit``),
real client keys and JWTs (``signing``), real server processes on loopback
(``server``), a loopback FHIR server (``fhir_server``) and PostgreSQL (``pg``).

Neither ``tests/`` nor ``bench/`` imports the other's helpers: both import these.
Not part of the service package (nothing here ships in the image).
"""
