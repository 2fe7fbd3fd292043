"""What chatwatch does about a failed model call: retry it (policy.py), skip a model that
keeps failing (breaker.py), and try the next model (chain.py). Each attempt is still one
model call through the one Monitor, so it is one record; this package decides which
attempt comes next and why."""
