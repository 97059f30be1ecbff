//! Examples, tests and benchmarks for flowcore live in this package.
