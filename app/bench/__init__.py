"""`python -m app bench`: one-at-a-time vs request-level vs iteration-level batching, in one run.

Every mode serves the same closed-loop clients with the same seeded mixed
workload on the same networks, so their ratios are comparable even on a noisy
shared machine; the achieved FLOP rate is set against a matmul peak measured
in the same run.
"""
