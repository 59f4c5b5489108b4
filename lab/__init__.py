"""The lab: benchmarks, the simulated-week replay and accuracy, the demo, and the report renderer."""
