"""The actors of the runtime: dispatcher, journal, router, aggregates, projections."""
