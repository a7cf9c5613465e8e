"""Sources under watch: what the public may know of how each source reports.

:mod:`credence.watch.status` puts together, as of any instant, each source's freshness
(the ledger's rule: :mod:`credence.ledger.freshness`) and its record in public: how
often it retracts what it reported and how often disputes about its records are upheld
against it, each shown only over enough cases to say something. It reads the ledger
and the disputes, and writes nothing; scoring, the API and the command line ask it.
"""
